"""Password policy and hashing: Argon2id via pwdlib, no truncation, upgrade on login."""

from __future__ import annotations

import unicodedata

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MIN_LENGTH = 12
MAX_LENGTH = 1024  # characters after NFC normalisation; Argon2 hashes every byte


def normalise(password: str) -> str:
    """NFC-normalise so that the same visible password always hashes alike."""
    return unicodedata.normalize("NFC", password)


def policy_violation(password: str) -> str | None:
    """Why `password` is not acceptable for a new account, or None."""
    length = len(normalise(password))
    if length < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if length > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if "\x00" in password:
        return "must not contain NUL characters"
    return None


class PasswordHasher:
    """Hashes and verifies secrets; a dummy hash keeps unknown-user logins as slow as real ones."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int):
        self._hash = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
        )
        self._dummy = self._hash.hash("dummy password for timing equalisation")

    def hash(self, secret: str) -> str:
        """A new salted hash of `secret`."""
        return self._hash.hash(normalise(secret))

    def verify(self, secret: str, stored: str | None) -> tuple[bool, str | None]:
        """(valid, new hash when the parameters changed); `stored=None` burns the same time."""
        if len(secret) > MAX_LENGTH * 4:
            # never hash unbounded input; still spend the time of one verification
            self._hash.verify("x", self._dummy)
            return False, None
        if stored is None:
            self._hash.verify(normalise(secret), self._dummy)
            return False, None
        return self._hash.verify_and_update(normalise(secret), stored)
