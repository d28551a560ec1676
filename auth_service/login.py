"""Logins of users (password) and service principals (client credentials).

The attempt is reserved in the throttle before any hash runs, so the limits hold under
concurrency; unknown accounts and wrong secrets cost the same hash and give the same answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from auth_service import sql, validation
from auth_service.hashing import HashSlots
from auth_service.keys import KeyRing
from auth_service.metrics import LOGIN_FAILURES
from auth_service.passwords import PasswordHasher
from auth_service.throttle import Attempt, Throttle
from auth_service.views import Tokens
from payments_common.db import Database, Row, Session
from payments_common.errors import DomainError, Unauthenticated

BAD_CREDENTIALS = "invalid credentials"
NewRefresh = Callable[[Session, uuid.UUID, uuid.UUID], tuple[str, int]]


class Logins:
    """Checks credentials and issues tokens."""

    def __init__(
        self,
        db: Database,
        throttle: Throttle,
        hasher: PasswordHasher,
        slots: HashSlots,
        keys: KeyRing,
        new_refresh: NewRefresh,
    ):
        self._db = db
        self._throttle = throttle
        self._hasher = hasher
        self._slots = slots
        self._keys = keys
        self._new_refresh = new_refresh

    def _attempt(
        self, keys: dict[str, int], identity: frozenset[str], lookup: str, **params: str
    ) -> tuple[Attempt, Row | None]:
        """Reserve the attempt and read the account in one transaction; raise if throttled."""
        with self._db.transaction() as session:
            attempt = self._throttle.reserve(keys, identity, session)
            account = session.one(lookup, **params) if isinstance(attempt, Attempt) else None
        if not isinstance(attempt, Attempt):
            raise attempt  # after the commit: the refused attempt stays counted
        return attempt, account

    def _check(self, attempt: Attempt, secret: str, stored: str | None) -> tuple[bool, str | None]:
        try:
            return self._slots.run("login", lambda: self._hasher.verify(secret, stored))
        except DomainError:  # no slot freed in time: this attempt was never checked, so it does not count
            with self._db.transaction() as session:
                self._throttle.release(attempt, session)
            raise

    def _fail(self, attempt: Attempt, kind: str) -> Unauthenticated:
        LOGIN_FAILURES.labels(kind).inc()
        with self._db.transaction() as session:
            self._throttle.failed(attempt, session)
        return Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")

    def password(self, email: str, password: str, peer: str) -> Tokens:
        """Check a user's password; unknown email and wrong password look the same."""
        validation.check_login_sizes({"email": email, "password": password})
        normalised = validation.normalise_email(email)
        attempt, user = self._attempt(
            *self._throttle.user_keys(normalised, peer), sql.USER_FOR_LOGIN, email=normalised
        )
        valid, new_hash = self._check(attempt, password, user.password_hash if user else None)
        if user is None or not valid or user.disabled:
            raise self._fail(attempt, "user")
        # counters, rehash and the refresh token together
        with self._db.transaction() as session:
            self._throttle.succeeded(attempt, session)
            if new_hash:
                session.rows(sql.UPDATE_PASSWORD_HASH, id=user.id, password_hash=new_hash)
            refresh, refresh_ttl = self._new_refresh(session, user.id, uuid.uuid4())
        access, ttl = self._keys.issue(str(user.id), "user", list(user.roles), [])
        return Tokens(access, ttl, "", refresh, refresh_ttl)

    def client(self, client_id: str, secret: str, peer: str) -> Tokens:
        """Client-credentials login of a service principal (no refresh token)."""
        validation.check_login_sizes({"client_id": client_id, "client_secret": secret})
        keys, identity = self._throttle.client_keys(client_id, peer)
        attempt, sp = self._attempt(keys, identity, sql.SERVICE_PRINCIPAL_FOR_LOGIN, client_id=client_id)
        valid, _ = self._check(attempt, secret, sp.secret_hash if sp else None)
        if sp is None or not valid or sp.disabled:
            raise self._fail(attempt, "service")
        with self._db.transaction() as session:
            self._throttle.succeeded(attempt, session)
        access, ttl = self._keys.issue(str(sp.id), "service", [], list(sp.scopes))
        return Tokens(access, ttl, " ".join(sp.scopes))
