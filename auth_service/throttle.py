"""Brute-force throttling kept in the database, so every replica sees the same counters.

After `limit` failures inside the window a key is blocked for a lockout that
doubles with each further failure (capped); when the lockout passes, the
real user can log in again and a success clears the account's counter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, select, text

from auth_service.metrics import LOGIN_THROTTLED
from auth_service.models import login_throttle
from payments_common.config import AuthSettings
from payments_common.db import unit_of_work
from payments_common.errors import ResourceExhausted

_RECORD = text(
    """
    INSERT INTO auth.login_throttle AS t (key, failures, window_started_at) VALUES (:key, 1, now())
    ON CONFLICT (key) DO UPDATE SET
      failures = CASE WHEN t.window_started_at < now() - make_interval(secs => :window)
                      THEN 1 ELSE t.failures + 1 END,
      window_started_at = CASE WHEN t.window_started_at < now() - make_interval(secs => :window)
                               THEN now() ELSE t.window_started_at END
    RETURNING failures
    """
)
_BLOCK = text(
    "UPDATE auth.login_throttle SET blocked_until = now() + make_interval(secs => :secs) WHERE key = :key"
)


class Throttle:
    """Counts failed logins per account and per peer."""

    def __init__(self, engine: Engine, settings: AuthSettings):
        self._engine = engine
        self._settings = settings

    def limits(self, account: str, peer: str) -> dict[str, int]:
        """The throttle keys of one attempt and their failure limits."""
        return {
            f"account:{account}": self._settings.login_max_failures,
            f"peer:{peer}": self._settings.login_peer_max_failures,
        }

    def check(self, keys: dict[str, int], session: Connection | None = None) -> frozenset[str]:
        """Refuse with RetryInfo while any of the keys is blocked; returns the keys that have a counter.

        With `session`, the check runs in the caller's unit of work (one round trip, no own transaction).
        """
        if session is None:
            with unit_of_work(self._engine) as own:
                return self.check(keys, own)
        rows = session.execute(
            select(
                login_throttle.c.key,
                login_throttle.c.blocked_until,
                (login_throttle.c.blocked_until > text("now()")).label("blocked"),
            ).where(login_throttle.c.key.in_(keys))
        ).all()
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
        with unit_of_work(self._engine) as session:
            for key, limit in sorted(keys.items()):
                failures = session.execute(
                    _RECORD, {"key": key, "window": settings.login_window_seconds}
                ).scalar_one()
                if failures >= limit:
                    lockout = min(
                        settings.login_lockout_seconds * 2 ** min(failures - limit, 20),
                        settings.login_lockout_max_seconds,
                    )
                    session.execute(_BLOCK, {"key": key, "secs": lockout})

    def reset(self, key: str, session: Connection | None = None) -> None:
        """Forget the failures of a key after a successful login (in the caller's unit of work if given)."""
        if session is None:
            with unit_of_work(self._engine) as own:
                self.reset(key, own)
            return
        session.execute(delete(login_throttle).where(login_throttle.c.key == key))
