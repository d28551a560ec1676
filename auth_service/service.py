"""Use cases of the auth service, each over its own unit of work."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from auth_service import validation
from auth_service.keys import KeyRing
from auth_service.metrics import LOGIN_FAILURES
from auth_service.models import refresh_tokens, service_principals, users
from auth_service.passwords import PasswordHasher
from auth_service.throttle import Throttle
from payments_common.config import AuthSettings
from payments_common.db import autocommit, unit_of_work
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

    def __init__(self, engine: Engine, settings: AuthSettings, hasher: PasswordHasher, keys: KeyRing):
        self._engine = engine
        self._settings = settings
        self._hasher = hasher
        self._keys = keys
        self._throttle = Throttle(engine, settings)
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
        with unit_of_work(self._engine) as session:
            row = session.execute(
                pg_insert(users)
                .values(
                    id=uuid.uuid4(),
                    email=normalised,
                    full_name=full_name.strip(),
                    password_hash=password_hash,
                    roles=list(roles),
                    disabled=False,
                    created_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=["email"])
                .returning(users.c.id, users.c.email, users.c.full_name, users.c.roles, users.c.created_at)
            ).first()
        if row is None:
            raise AlreadyExists("email is already registered", reason="EMAIL_TAKEN")
        return UserView(*row)

    def login_password(self, email: str, password: str, peer: str) -> Tokens:
        """Check a user's password; unknown email and wrong password look the same."""
        validation.check_login_sizes({"email": email, "password": password})
        normalised = validation.normalise_email(email)
        keys = self._throttle.limits(normalised, peer)
        account_key = f"account:{normalised}"
        with autocommit(self._engine) as session:  # two reads, no transaction round trips
            counted = self._throttle.check(keys, session)
            user = session.execute(
                select(users.c.id, users.c.password_hash, users.c.roles, users.c.disabled).where(
                    users.c.email == normalised
                )
            ).first()
        valid, new_hash = self._verify(password, user.password_hash if user else None)
        if user is None or not valid or user.disabled:
            LOGIN_FAILURES.labels("user").inc()
            self._throttle.record_failure(keys)
            raise Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        reset = account_key in counted  # no DELETE round trip when there is nothing to forget
        # counter reset, rehash and refresh token together; the token alone is one statement
        scope = unit_of_work if reset or new_hash else autocommit
        with scope(self._engine) as session:
            if reset:
                self._throttle.reset(account_key, session)
            if new_hash:
                session.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
            refresh, refresh_ttl = self._new_refresh(session, user.id, uuid.uuid4())
        access, ttl = self._keys.issue(str(user.id), "user", list(user.roles), [])
        return Tokens(access, ttl, "", refresh, refresh_ttl)

    def login_client(self, client_id: str, secret: str, peer: str) -> Tokens:
        """Client-credentials login of a service principal (no refresh token)."""
        validation.check_login_sizes({"client_id": client_id, "client_secret": secret})
        keys = self._throttle.limits(f"client:{client_id}", peer)
        self._throttle.check(keys)
        with unit_of_work(self._engine) as session:
            sp = session.execute(
                select(service_principals).where(service_principals.c.client_id == client_id)
            ).first()
        valid, _ = self._verify(secret, sp.secret_hash if sp else None)
        if sp is None or not valid or sp.disabled:
            LOGIN_FAILURES.labels("service").inc()
            self._throttle.record_failure(keys)
            raise Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        access, ttl = self._keys.issue(str(sp.id), "service", [], list(sp.scopes))
        return Tokens(access, ttl, " ".join(sp.scopes))

    def _new_refresh(self, session: Connection, user_id: uuid.UUID, family: uuid.UUID) -> tuple[str, int]:
        token = "rt_" + secrets.token_urlsafe(32)
        ttl = self._settings.refresh_token_ttl_seconds
        session.execute(
            insert(refresh_tokens).values(
                id=uuid.uuid4(),
                family_id=family,
                user_id=user_id,
                token_hash=_digest(token),
                issued_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
            )
        )
        return token, ttl

    def refresh(self, token: str) -> Tokens:
        """Spend a refresh token for a new pair; a spent token revokes its whole family."""
        now = datetime.now(UTC)
        reused, user = False, None
        with unit_of_work(self._engine) as session:
            row = session.execute(
                select(refresh_tokens).where(refresh_tokens.c.token_hash == _digest(token)).with_for_update()
            ).first()
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise Unauthenticated("refresh token is not valid", reason="REFRESH_TOKEN_INVALID")
            if row.used_at is not None:
                reused = True
                self._revoke_family(session, row.family_id)
            else:
                user = session.execute(
                    select(users.c.id, users.c.roles).where(
                        users.c.id == row.user_id, users.c.disabled.is_(False)
                    )
                ).first()
                if user is None:
                    raise Unauthenticated("refresh token is not valid", reason="REFRESH_TOKEN_INVALID")
                session.execute(
                    update(refresh_tokens).where(refresh_tokens.c.id == row.id).values(used_at=now)
                )
                refresh, refresh_ttl = self._new_refresh(session, user.id, row.family_id)
        if reused or user is None:  # raised after the commit, so that the family stays revoked
            raise Unauthenticated(
                "refresh token was already used; session revoked", reason="REFRESH_TOKEN_REUSED"
            )
        access, ttl = self._keys.issue(str(user.id), "user", list(user.roles), [])
        return Tokens(access, ttl, "", refresh, refresh_ttl)

    @staticmethod
    def _revoke_family(session: Connection, family_id: uuid.UUID) -> None:
        session.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )

    def revoke(self, token: str) -> None:
        """End the family of a refresh token (logout); unknown tokens are ignored."""
        with unit_of_work(self._engine) as session:
            family = session.execute(
                select(refresh_tokens.c.family_id).where(refresh_tokens.c.token_hash == _digest(token))
            ).scalar()
            if family is not None:
                self._revoke_family(session, family)

    def current_user(self, principal: Principal) -> UserView:
        """The user behind a verified access token."""
        if principal.kind != "user":
            raise PermissionDenied("service principals have no user profile", reason="NOT_A_USER")
        with unit_of_work(self._engine) as session:
            row = session.execute(
                select(users.c.id, users.c.email, users.c.full_name, users.c.roles, users.c.created_at).where(
                    users.c.id == uuid.UUID(principal.subject), users.c.disabled.is_(False)
                )
            ).first()
        if row is None:
            raise Unauthenticated("the token's user no longer exists", reason="USER_DISABLED")
        return UserView(*row)

    def create_service_principal(self, name: str, scopes: list[str]) -> tuple[str, str]:
        """A new service principal; returns (client_id, client_secret), the secret shown only once."""
        client_id = "sp_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with unit_of_work(self._engine) as session:
            session.execute(
                insert(service_principals).values(
                    id=uuid.uuid4(),
                    client_id=client_id,
                    name=name,
                    secret_hash=self._hash(secret),
                    scopes=scopes,
                    disabled=False,
                    created_at=datetime.now(UTC),
                )
            )
        return client_id, secret
