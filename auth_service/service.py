"""Use cases of the auth service, each over its own unit of work."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from auth_service import sql, validation
from auth_service.hashing import HashSlots, usable_cpus
from auth_service.keys import KeyRing
from auth_service.login import Logins
from auth_service.passwords import PasswordHasher
from auth_service.throttle import Throttle
from auth_service.views import Tokens, UserView
from payments_common.config import AuthSettings
from payments_common.db import Database, Session
from payments_common.errors import AlreadyExists, PermissionDenied, Unauthenticated
from payments_common.tokens import Principal


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AuthService:
    """Registration, login, refresh rotation and revocation."""

    def __init__(self, db: Database, settings: AuthSettings, hasher: PasswordHasher, keys: KeyRing):
        self._db = db
        self._settings = settings
        self._hasher = hasher
        self._throttle = Throttle(settings)
        self.slots = HashSlots(
            settings.password_hash_concurrency or usable_cpus(), settings.password_hash_wait_seconds
        )
        self._keys = keys
        self.logins = Logins(db, self._throttle, hasher, self.slots, keys, self._new_refresh)

    def register(
        self,
        email: str,
        password: str,
        full_name: str,
        roles: tuple[str, ...] = ("user",),
        peer: str | None = None,
    ) -> UserView:
        """Create a user; a taken email is ALREADY_EXISTS. Callers over the network name their `peer`,
        whose registrations are throttled (operators' CLI commands are not)."""
        normalised = validation.check_registration(email, password, full_name)
        if peer is not None:
            with self._db.statement() as session:
                refusal = self._throttle.reserve_registration(peer, session)
            if refusal is not None:
                raise refusal
        password_hash = self.slots.run("register", lambda: self._hasher.hash(password))
        with self._db.statement() as session:
            row = session.one(
                sql.INSERT_USER,
                email=normalised,
                full_name=full_name.strip(),
                password_hash=password_hash,
                roles=list(roles),
            )
        if row is None:
            raise AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        return UserView.from_row(row)

    def _new_refresh(self, session: Session, user_id: uuid.UUID, family: uuid.UUID) -> tuple[str, int]:
        token = "rt_" + secrets.token_urlsafe(32)
        ttl = self._settings.refresh_token_ttl_seconds
        session.rows(
            sql.INSERT_REFRESH_TOKEN, family_id=family, user_id=user_id, token_hash=_digest(token), ttl=ttl
        )
        return token, ttl

    def refresh(self, token: str) -> Tokens:
        """Spend a refresh token for a new pair; a spent token revokes its whole family."""
        reused, user = False, None
        with self._db.transaction() as session:
            row = session.one(sql.LOCK_REFRESH_TOKEN, token_hash=_digest(token))
            if row is None or row.revoked_at is not None or row.expired:
                raise Unauthenticated("refresh token is not valid", reason="REFRESH_TOKEN_INVALID")
            if row.used_at is not None:
                reused = True
                session.rows(sql.REVOKE_FAMILY, family_id=row.family_id)
            else:
                user = session.one(sql.ACTIVE_USER, id=row.user_id)
                if user is None:
                    raise Unauthenticated("refresh token is not valid", reason="REFRESH_TOKEN_INVALID")
                session.rows(sql.SPEND_REFRESH_TOKEN, id=row.id)
                refresh, refresh_ttl = self._new_refresh(session, user.id, row.family_id)
        if reused or user is None:  # raised after the commit, so that the family stays revoked
            raise Unauthenticated(
                "refresh token was already used; session revoked", reason="REFRESH_TOKEN_REUSED"
            )
        access, ttl = self._keys.issue(str(user.id), "user", list(user.roles), [])
        return Tokens(access, ttl, "", refresh, refresh_ttl)

    def revoke(self, token: str) -> None:
        """End the family of a refresh token (logout); unknown tokens are ignored."""
        with self._db.transaction() as session:
            family = session.one(sql.FAMILY_OF_REFRESH_TOKEN, token_hash=_digest(token))
            if family is not None:
                session.rows(sql.REVOKE_FAMILY, family_id=family.family_id)

    def current_user(self, principal: Principal) -> UserView:
        """The user behind a verified access token."""
        if principal.kind != "user":
            raise PermissionDenied("service principals have no user profile", reason="NOT_A_USER")
        with self._db.statement() as session:
            row = session.one(sql.ACTIVE_USER, id=uuid.UUID(principal.subject))
        if row is None:
            raise Unauthenticated("the token's user no longer exists", reason="USER_DISABLED")
        return UserView.from_row(row)

    def create_service_principal(self, name: str, scopes: list[str]) -> tuple[str, str]:
        """A new service principal; returns (client_id, client_secret), the secret shown only once."""
        client_id = "sp_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        secret_hash = self.slots.run("login", lambda: self._hasher.hash(secret))
        with self._db.statement() as session:
            session.rows(
                sql.INSERT_SERVICE_PRINCIPAL,
                client_id=client_id,
                name=name,
                secret_hash=secret_hash,
                scopes=scopes,
            )
        return client_id, secret
