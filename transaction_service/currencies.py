"""The currencies this service accepts (the shared ISO 4217 table) and the largest amount of each.

Amounts travel as integers of the minor unit (cents for USD, yen for JPY), so
a fraction of a minor unit cannot even be written down. The exponent instead
bounds the amount: at most `MAX_MAJOR_UNITS` major units, i.e.
10 ** (12 + exponent) minor units. A JPY amount sized as if yen had cents
(100x too large) is therefore refused where the same number is a valid USD
amount, and no amount or sum of a few refunds comes near the int64 limit.

The table itself lives in `payments_common.currencies`, because the dashboard formats amounts
with the same exponents.
"""

from __future__ import annotations

from payments_common.currencies import EXPONENTS, exponent

__all__ = ["EXPONENTS", "MAX_MAJOR_UNITS", "exponent", "max_amount_minor"]

MAX_MAJOR_UNITS = 10**12


def max_amount_minor(code: str) -> int:
    """The largest amount in minor units accepted for a supported currency."""
    return int(MAX_MAJOR_UNITS * 10 ** EXPONENTS[code])
