"""Brute-force throttling kept in the database, so every replica sees the same counters.

Each attempt is reserved (counted) before its password is hashed, so concurrent guesses cannot
overtake a limit. After `limit` attempts inside the window a key is blocked for a lockout that
doubles with each further failure (capped); once the lockout passes, one more attempt may try.
A success forgets the identity's counters and gives the peer its attempt back.

Keys: for a user, the account from one peer (`LOGIN_MAX_FAILURES`), the account from anywhere
(`LOGIN_ACCOUNT_MAX_FAILURES`, far higher, so an attacker cannot keep the owner out alone) and the
peer (`LOGIN_PEER_MAX_FAILURES`); for a service principal, the peer and the client id from that
peer only (a guessable client id must not let anyone stop settlement). Identities are hashed into
the key, so a key is always short.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from auth_service import sql
from auth_service.metrics import LOGIN_THROTTLED
from payments_common.config import AuthSettings
from payments_common.db import Session
from payments_common.errors import ResourceExhausted


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Attempt:
    """A reserved attempt: each key's limit and its count with this attempt included."""

    limits: dict[str, int]
    counts: dict[str, int]
    locked: frozenset[str]  # keys blocked when this attempt was reserved (it was let through)
    identity: frozenset[str]  # the keys a success forgets (the rest get the attempt back)


class Throttle:
    """Counts login attempts per identity and per peer; registrations per peer."""

    def __init__(self, settings: AuthSettings):
        self._settings = settings

    def user_keys(self, email: str, peer: str) -> tuple[dict[str, int], frozenset[str]]:
        """The keys of a user's login and the identity keys among them."""
        s = self._settings
        keys = {
            f"account-peer:{_digest(email, peer)}": s.login_max_failures,
            f"account:{_digest(email)}": s.login_account_max_failures,
            f"peer:{peer}": s.login_peer_max_failures,
        }
        return keys, frozenset(list(keys)[:2])

    def client_keys(self, client_id: str, peer: str) -> tuple[dict[str, int], frozenset[str]]:
        """The keys of a service principal's login: never the client id alone."""
        s = self._settings
        keys = {
            f"client-peer:{_digest(client_id, peer)}": s.login_max_failures,
            f"peer:{peer}": s.login_peer_max_failures,
        }
        return keys, frozenset(list(keys)[:1])

    def reserve(
        self, keys: dict[str, int], identity: frozenset[str], session: Session, window: int | None = None
    ) -> Attempt | ResourceExhausted:
        """Count the attempt in every key; the refusal to raise (after commit) if one is over its limit."""
        rows = session.rows(
            sql.RESERVE_ATTEMPTS, keys=sorted(keys), window=window or self._settings.login_window_seconds
        )
        blocked = [row.blocked_until for row in rows if row.blocked]
        over = {row.key: row.failures for row in rows if row.failures > keys[row.key]}
        # over the limit with a lockout behind it: this attempt may try, alone (the key is blocked meanwhile)
        retrying = {row.key for row in rows if row.key in over and row.was_locked_out and not blocked}
        for key, count in over.items():
            session.rows(sql.BLOCK, key=key, secs=self.lockout(count, keys[key]))
        if blocked or set(over) - retrying:
            LOGIN_THROTTLED.inc()
            waits = [(moment - datetime.now(UTC)).total_seconds() for moment in blocked]
            return ResourceExhausted(
                "too many failed login attempts; retry later",
                retry_after=max([*waits, 0.1]) if blocked else self._settings.login_lockout_seconds,
                reason="LOGIN_THROTTLED",
            )
        return Attempt(keys, {row.key: row.failures for row in rows}, frozenset(retrying), identity)

    def lockout(self, count: int, limit: int) -> float:
        """The lockout after `count` attempts against `limit`: doubling per attempt beyond it, capped."""
        s = self._settings
        return float(
            min(s.login_lockout_seconds * 2 ** min(max(count - limit, 0), 20), s.login_lockout_max_seconds)
        )

    def failed(self, attempt: Attempt, session: Session) -> None:
        """The attempt failed: it stays counted, and a key that reached its limit is blocked."""
        for key, count in sorted(attempt.counts.items()):
            if count >= attempt.limits[key] and key not in attempt.locked:
                session.rows(sql.BLOCK, key=key, secs=self.lockout(count, attempt.limits[key]))

    @staticmethod
    def succeeded(attempt: Attempt, session: Session) -> None:
        """The attempt succeeded: forget the identity's counters, give the peer its attempt back
        (and lift the block that kept others out while it tried)."""
        session.rows(sql.FORGET_KEYS, keys=sorted(attempt.identity))
        rest = sorted(set(attempt.counts) - attempt.identity)
        if rest:
            session.rows(sql.GIVE_BACK_ATTEMPT, keys=rest, unblock=sorted(attempt.locked - attempt.identity))

    @staticmethod
    def release(attempt: Attempt, session: Session) -> None:
        """The attempt was never checked (no hashing slot): it counts for nothing."""
        session.rows(sql.GIVE_BACK_ATTEMPT, keys=sorted(attempt.counts), unblock=sorted(attempt.locked))

    def reserve_registration(self, peer: str, session: Session) -> ResourceExhausted | None:
        """Count a registration from `peer`; the refusal once the peer is over its hourly budget."""
        key = f"register:{peer}"
        row = session.one(sql.RESERVE_ATTEMPTS, keys=[key], window=self._settings.register_window_seconds)
        if row is not None and row.failures > self._settings.register_peer_max:
            return ResourceExhausted(
                "too many registrations from this address; retry later",
                retry_after=float(self._settings.register_window_seconds),
                reason="REGISTRATION_THROTTLED",
            )
        return None
