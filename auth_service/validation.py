"""Input rules of the auth service, each violation named by its request field."""

from __future__ import annotations

import re
import unicodedata

from auth_service import passwords
from payments_common.errors import InvalidArgument

MAX_EMAIL = 254
MAX_NAME = 200
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f.]+(\.[^@\s\x00-\x1f.]+)+$")


# Characters that look like nothing or like something else: controls (Cc, incl. NUL, DEL and C1),
# format characters (Cf: zero-width space, right-to-left override, ...), private use, surrogates,
# unassigned code points, and line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def normalise_email(email: str) -> str:
    """Trimmed, NFKC (fullwidth letters become ASCII), lower case: the form stored and compared."""
    return unicodedata.normalize("NFKC", email.strip()).lower()


def has_invisible(value: str) -> bool:
    """True when `value` holds a control, format or other invisible character."""
    return any(unicodedata.category(c) in _INVISIBLE for c in value)


def check_registration(email: str, password: str, full_name: str) -> str:
    """The normalised email, or InvalidArgument listing every bad field."""
    violations: list[tuple[str, str]] = []
    normalised = normalise_email(email)
    if len(normalised) > MAX_EMAIL:
        violations.append(("email", f"must be at most {MAX_EMAIL} characters"))
    elif has_invisible(email):
        violations.append(("email", "must not contain control or invisible characters"))
    elif not _EMAIL.match(normalised):
        violations.append(("email", "must be a valid email address"))
    problem = passwords.policy_violation(password)
    if problem:
        violations.append(("password", problem))
    if len(full_name) > MAX_NAME:
        violations.append(("full_name", f"must be at most {MAX_NAME} characters"))
    elif any(unicodedata.category(c) == "Cc" for c in full_name):
        violations.append(("full_name", "must not contain control characters"))
    if violations:
        raise InvalidArgument(violations)
    return normalised


def check_login_sizes(fields: dict[str, str]) -> None:
    """Oversized credentials, or identifiers with NUL or other controls, are a bad request, never hashed."""
    limits = {
        "email": MAX_EMAIL * 4,
        "client_id": 256,
        "password": passwords.MAX_LENGTH * 4,
        "client_secret": 512,
    }
    violations = [(name, "is too long") for name, value in fields.items() if len(value) > limits[name]]
    violations += [
        (name, "must not contain control or invisible characters")
        for name in ("email", "client_id")
        if name in fields and len(fields[name]) <= limits[name] and has_invisible(fields[name])
    ]
    if violations:
        raise InvalidArgument(violations)
