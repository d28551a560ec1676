"""Brute-force throttling kept in the database, so every replica sees the same counters.

After `limit` failures inside the window a key is blocked for a lockout that
doubles with each further failure (capped); when the lockout passes, the
real user can log in again and a success clears the account's counter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from auth_service import sql
from auth_service.metrics import LOGIN_THROTTLED
from payments_common.config import AuthSettings
from payments_common.db import Database, Session
from payments_common.errors import ResourceExhausted


class Throttle:
    """Counts failed logins per account and per peer."""

    def __init__(self, db: Database, settings: AuthSettings):
        self._db = db
        self._settings = settings

    def limits(self, account: str, peer: str) -> dict[str, int]:
        """The throttle keys of one attempt and their failure limits."""
        return {
            f"account:{account}": self._settings.login_max_failures,
            f"peer:{peer}": self._settings.login_peer_max_failures,
        }

    def check(self, keys: dict[str, int], session: Session | None = None) -> frozenset[str]:
        """Refuse with RetryInfo while any of the keys is blocked; returns the keys that have a counter.

        With `session`, the check runs in the caller's scope (one round trip, no own transaction).
        """
        if session is None:
            with self._db.statement() as own:
                return self.check(keys, own)
        rows = session.rows(sql.THROTTLE_STATE, keys=sorted(keys))
        blocked = [row.blocked_until for row in rows if row.blocked]
        if blocked:
            LOGIN_THROTTLED.inc()
            wait = (max(blocked) - datetime.now(UTC)).total_seconds()
            raise ResourceExhausted(
                "too many failed login attempts; retry later",
                retry_after=max(wait, 0.1),
                reason="LOGIN_THROTTLED",
            )
        return frozenset(row.key for row in rows)

    def record_failure(self, keys: dict[str, int]) -> None:
        """Count one failure for each key, blocking the ones over their limit."""
        settings = self._settings
        with self._db.transaction() as session:
            for key, limit in sorted(keys.items()):
                failures = session.value(sql.RECORD_FAILURE, key=key, window=settings.login_window_seconds)
                if failures >= limit:
                    lockout = min(
                        settings.login_lockout_seconds * 2 ** min(failures - limit, 20),
                        settings.login_lockout_max_seconds,
                    )
                    session.rows(sql.BLOCK, key=key, secs=lockout)

    @staticmethod
    def reset(key: str, session: Session) -> None:
        """Forget the failures of a key after a successful login (in the caller's scope)."""
        session.rows(sql.RESET_THROTTLE, key=key)
