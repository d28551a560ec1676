"""Payment method tokens: what a caller may send as `payment_method`, and never a card number.

A card number (PAN) must not enter our logs, database or events (PCI DSS keeps raw PANs to the
processor's vault). A value is refused when any run of digits in it, ignoring spaces and dashes
between them, holds 13 to 19 consecutive digits that pass the Luhn check: also a PAN with text
around it (`tok_4242 4242 4242 4242`) or joined to its CVC. Real tokens (`pm_1Nq…`, Adyen's
stored ids) are letters and few digits, so this refuses nothing a processor issues, and a token
that is a long digit string is suspicious enough to refuse. Messages never echo the value.
"""

from __future__ import annotations

import re
import unicodedata

MIN_PAN_DIGITS = 13
MAX_PAN_DIGITS = 19
MAX_TOKEN_CHARS = 255
# digits with at most three spaces or dashes between neighbours ("4242 4242", "4242 - 4242")
_DIGIT_RUN = re.compile(r"[0-9](?:[\s\-]{0,3}[0-9])*")
_TOKEN = re.compile(r"[!-~]+")  # visible ASCII, no spaces


class InvalidPaymentMethod(ValueError):
    """A `payment_method` the service must refuse (INVALID_ARGUMENT), with a message safe to log."""


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check that every card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def looks_like_card_number(value: str) -> bool:
    """True when `value` contains something that could be a card number."""
    normalised = unicodedata.normalize("NFKC", value)  # full-width digits become ASCII ones
    for run in _DIGIT_RUN.finditer(normalised):
        digits = re.sub(r"[^0-9]", "", run.group())
        for length in range(MIN_PAN_DIGITS, min(len(digits), MAX_PAN_DIGITS) + 1):
            if any(luhn_valid(digits[start : start + length]) for start in range(len(digits) - length + 1)):
                return True
    return False


def check_payment_method(value: str) -> str:
    """`value` when it may be sent to a processor as a token; raises InvalidPaymentMethod otherwise."""
    if looks_like_card_number(value):
        raise InvalidPaymentMethod(
            "looks like a card number; send the processor's payment method token, never the card number"
        )
    if not _TOKEN.fullmatch(value) or len(value) > MAX_TOKEN_CHARS:
        raise InvalidPaymentMethod(
            f"must be a processor token of 1 to {MAX_TOKEN_CHARS} visible ASCII characters, without spaces"
        )
    return value
