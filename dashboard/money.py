"""Amounts in minor units shown as money, and typed amounts read back into minor units.

The exponent comes from the shared ISO 4217 table (`payments_common.currencies`), which is what
the service counts in; Babel (CLDR) only supplies the symbol, the grouping and the symbol's place
for the locale. CLDR's own digits are not used: they differ from ISO 4217 for 15 supported
currencies (IQD 1234567 is 1,234.567 dinars, which CLDR's 0 digits would show as 1,235).
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberPattern, get_currency_symbol, get_decimal_symbol

from payments_common import currencies


class AmountError(ValueError):
    """A typed amount that is not a positive number of the currency's units, in words."""


@lru_cache(maxsize=64)
def _pattern(locale: str, exponent: int) -> tuple[Locale, NumberPattern]:
    loc = Locale.parse(locale)
    pattern = copy.copy(loc.currency_formats["standard"])
    pattern.frac_prec = (exponent, exponent)
    return loc, pattern


def format_minor(amount_minor: int, currency: str, locale: str = "en") -> str:
    """`amount_minor` of `currency` as money: JPY 500 is ¥500, EUR 1250 is €12.50."""
    exponent = currencies.exponent(currency)
    if exponent is None:  # not a supported code: show what was stored, never guess a scale
        return f"{amount_minor} {currency} (minor units)"
    loc, pattern = _pattern(locale, exponent)
    text = pattern.apply(
        Decimal(amount_minor).scaleb(-exponent), loc, currency=currency, currency_digits=False
    )
    return _spaced(text, get_currency_symbol(currency, loc))


def _spaced(text: str, symbol: str) -> str:
    """CLDR's currency spacing, which Babel leaves out: a letter symbol never touches a digit."""
    if not symbol[-1:].isalpha() and not symbol[:1].isalpha():
        return text
    at = text.find(symbol)
    if at < 0:
        return text
    end = at + len(symbol)
    if symbol[-1].isalpha() and end < len(text) and text[end].isdigit():
        return f"{text[:end]}\u00a0{text[end:]}"
    if symbol[0].isalpha() and at > 0 and text[at - 1].isdigit():
        return f"{text[:at]}\u00a0{text[at:]}"
    return text


def major_units_hint(currency: str, locale: str = "en") -> str:
    """An example of a typed amount for `currency` (4.50 for EUR, 450 for JPY)."""
    exponent = currencies.exponent(currency) or 0
    if exponent == 0:
        return "450"
    return "4" + get_decimal_symbol(locale) + "50".ljust(exponent, "0")[:exponent]


@lru_cache(maxsize=16)
def _amount_syntax(locale: str) -> re.Pattern[str]:
    """Digits, then optionally the locale's decimal symbol and more digits; no grouping."""
    return re.compile(r"^\s*(\d{1,30})(?:" + re.escape(get_decimal_symbol(locale)) + r"(\d*))?\s*$")


def parse_major(text: str, currency: str, locale: str = "en") -> int:
    """A typed amount of `currency` ("4.50") in minor units (450); AmountError says what is wrong."""
    exponent = currencies.exponent(currency)
    if exponent is None:
        raise AmountError(f"{currency} is not a supported currency")
    match = _amount_syntax(locale).match(text)
    if match is None:
        raise AmountError(f"enter an amount such as {major_units_hint(currency, locale)}")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        if exponent == 0:
            raise AmountError(f"{currency} has no minor unit: enter a whole number")
        raise AmountError(f"{currency} has at most {exponent} digits after the decimal point")
    try:
        minor = int(Decimal(f"{whole}.{fraction or '0'}").scaleb(exponent))
    except InvalidOperation:
        raise AmountError(f"enter an amount such as {major_units_hint(currency, locale)}") from None
    if minor <= 0:
        raise AmountError("the amount must be more than zero")
    if minor >= 2**63:  # the wire's int64; the service has the real (much lower) limit
        raise AmountError("the amount is too large")
    return minor
