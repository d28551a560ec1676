"""The ISO 4217 currencies the system supports, with each one's minor-unit exponent.

Reference data, not a business rule: the transaction service accepts exactly these codes and
the dashboard formats amounts with these exponents, so both read this one table (services never
import each other). The exponent is ISO 4217's, which is what amounts are counted in: CLDR's
display digits differ for 15 of these (IQD has 3 minor digits in ISO 4217, 0 in CLDR), so a
formatting library's precision must not be used to read an amount.

Funds, precious metals and testing codes (XAU, XDR, XTS, ...) are left out on purpose: they are
not payment currencies.
"""

from __future__ import annotations

_BY_EXPONENT: dict[int, str] = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD "
        "CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD "
        "GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD "
        "MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP "
        "PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
        "TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG"
    ),
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "UYW",
}

EXPONENTS: dict[str, int] = {
    code: exponent for exponent, codes in _BY_EXPONENT.items() for code in codes.split()
}


def exponent(code: str) -> int | None:
    """The minor-unit exponent of `code` (2 for USD, 0 for JPY), or None if not supported."""
    return EXPONENTS.get(code)
