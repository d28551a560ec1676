"""The fixed ISO 4217 list this service accepts, with each currency's minor-unit exponent.

Amounts travel as integers of the minor unit (cents for USD, yen for JPY), so
a fraction of a minor unit cannot even be written down. The exponent instead
bounds the amount: at most `MAX_MAJOR_UNITS` major units, i.e.
10 ** (12 + exponent) minor units. A JPY amount sized as if yen had cents
(100x too large) is therefore refused where the same number is a valid USD
amount, and no amount or sum of a few refunds comes near the int64 limit.

Funds, precious metals and testing codes (XAU, XDR, XTS, ...) are left out on
purpose: they are not payment currencies.
"""

from __future__ import annotations

MAX_MAJOR_UNITS = 10**12

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


def max_amount_minor(code: str) -> int:
    """The largest amount in minor units accepted for a supported currency."""
    return int(MAX_MAJOR_UNITS * 10 ** EXPONENTS[code])
