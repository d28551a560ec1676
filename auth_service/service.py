"""Use cases of the auth service, each over its own unit of work."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from auth_service import sql, validation
from auth_service.keys import KeyRing
from auth_service.metrics import LOGIN_FAILURES
from auth_service.passwords import PasswordHasher
from auth_service.throttle import Throttle
from payments_common.config import AuthSettings
from payments_common.db import Database, Row, Session
from payments_common.errors import AlreadyExists, PermissionDenied, Unauthenticated
from payments_common.tokens import Principal

BAD_CREDENTIALS = "invalid credentials"


@dataclass(frozen=True)
class UserView:
    """What callers may see of a user."""

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> UserView:
        """The view of a row holding `sql.USER_VIEW_COLUMNS`."""
        return cls(row.id, row.email, row.full_name, list(row.roles), row.created_at)


@dataclass(frozen=True)
class Tokens:
    """An issued access token and, for users, the next refresh token."""

    access_token: str = field(repr=False)
    expires_in: int
    scope: str
    refresh_token: str = field(default="", repr=False)
    refresh_expires_in: int = 0


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AuthService:
    """Registration, login, refresh rotation and revocation."""

    def __init__(self, db: Database, settings: AuthSettings, hasher: PasswordHasher, keys: KeyRing):
        self._db = db
        self._settings = settings
        self._hasher = hasher
        self._keys = keys
        self._throttle = Throttle(db, settings)
        # Argon2 is CPU- and memory-bound: more hashes at once than cores only add memory (each
        # thread's malloc arena keeps its ~memory_kib buffer), so hashing runs on a small pool.
        self._hash_pool = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="hash"
        )

    def _verify(self, secret: str, stored: str | None) -> tuple[bool, str | None]:
        return self._hash_pool.submit(self._hasher.verify, secret, stored).result()

    def _hash(self, secret: str) -> str:
        return self._hash_pool.submit(self._hasher.hash, secret).result()

    def register(
        self, email: str, password: str, full_name: str, roles: tuple[str, ...] = ("user",)
    ) -> UserView:
        """Create a user; a taken email is ALREADY_EXISTS."""
        normalised = validation.check_registration(email, password, full_name)
        password_hash = self._hash(password)
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

    def login_password(self, email: str, password: str, peer: str) -> Tokens:
        """Check a user's password; unknown email and wrong password look the same."""
        validation.check_login_sizes({"email": email, "password": password})
        normalised = validation.normalise_email(email)
        keys = self._throttle.limits(normalised, peer)
        account_key = f"account:{normalised}"
        with self._db.statement() as session:  # two reads, no transaction round trips
            counted = self._throttle.check(keys, session)
            user = session.one(sql.USER_FOR_LOGIN, email=normalised)
        valid, new_hash = self._verify(password, user.password_hash if user else None)
        if user is None or not valid or user.disabled:
            LOGIN_FAILURES.labels("user").inc()
            self._throttle.record_failure(keys)
            raise Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        reset = account_key in counted  # no DELETE round trip when there is nothing to forget
        # counter reset, rehash and refresh token together; the token alone is one statement
        scope = self._db.transaction if reset or new_hash else self._db.statement
        with scope() as session:
            if reset:
                self._throttle.reset(account_key, session)
            if new_hash:
                session.rows(sql.UPDATE_PASSWORD_HASH, id=user.id, password_hash=new_hash)
            refresh, refresh_ttl = self._new_refresh(session, user.id, uuid.uuid4())
        access, ttl = self._keys.issue(str(user.id), "user", list(user.roles), [])
        return Tokens(access, ttl, "", refresh, refresh_ttl)

    def login_client(self, client_id: str, secret: str, peer: str) -> Tokens:
        """Client-credentials login of a service principal (no refresh token)."""
        validation.check_login_sizes({"client_id": client_id, "client_secret": secret})
        keys = self._throttle.limits(f"client:{client_id}", peer)
        self._throttle.check(keys)
        with self._db.statement() as session:
            sp = session.one(sql.SERVICE_PRINCIPAL_FOR_LOGIN, client_id=client_id)
        valid, _ = self._verify(secret, sp.secret_hash if sp else None)
        if sp is None or not valid or sp.disabled:
            LOGIN_FAILURES.labels("service").inc()
            self._throttle.record_failure(keys)
            raise Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        access, ttl = self._keys.issue(str(sp.id), "service", [], list(sp.scopes))
        return Tokens(access, ttl, " ".join(sp.scopes))

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
        secret_hash = self._hash(secret)
        with self._db.statement() as session:
            session.rows(
                sql.INSERT_SERVICE_PRINCIPAL,
                client_id=client_id,
                name=name,
                secret_hash=secret_hash,
                scopes=scopes,
            )
        return client_id, secret
