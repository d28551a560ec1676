"""Signing keys: asymmetric by default, stored in the auth schema, rotated without downtime.

The newest unretired key signs. A retired key stays in the JWK set until
every token it signed has expired, so verifiers keep accepting them.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from auth_service import sql
from payments_common.config import AuthSettings
from payments_common.db import Database
from payments_common.errors import Unavailable
from payments_common.tokens import ACCESS_TOKEN_TYPE, HS256_KID, VerificationKey, keys_from_jwks

log = logging.getLogger("payments.keys")


@dataclass(frozen=True)
class SigningKey:
    """The key that signs new tokens."""

    kid: str
    algorithm: str
    private_key: Any = field(repr=False)


def _new_key(algorithm: str) -> tuple[str, dict[str, Any]]:
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, jwk


def rotate(db: Database, algorithm: str) -> str:
    """Add a new signing key and retire the current ones; returns the new kid."""
    pem, jwk = _new_key(algorithm)
    kid = secrets.token_urlsafe(12)
    jwk.update(kid=kid, alg=algorithm, use="sig")
    with db.transaction() as session:
        session.rows(sql.LOCK_SIGNING_KEYS)
        session.rows(sql.RETIRE_SIGNING_KEYS)
        session.rows(
            sql.INSERT_SIGNING_KEY,
            kid=kid,
            algorithm=algorithm,
            private_key_pem=pem,
            public_jwk=json.dumps(jwk),
        )
    return kid


def ensure_key(db: Database, algorithm: str) -> None:
    """Create the first signing key (for `algorithm`) when none is active."""
    with db.transaction() as session:
        session.rows(sql.LOCK_SIGNING_KEYS)
        active = session.one(sql.ACTIVE_KEY_OF_ALGORITHM, algorithm=algorithm)
    if active is None:
        rotate(db, algorithm)


class KeyRing:
    """Signs access tokens and publishes the public keys; cached briefly to spare the database."""

    def __init__(self, db: Database, settings: AuthSettings):
        self._db = db
        self._settings = settings
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._signer: SigningKey | None = None
        self._jwks = '{"keys": []}'
        if settings.algorithm == "HS256":
            assert settings.secret_key is not None
            self._signer = SigningKey(HS256_KID, "HS256", settings.secret_key.get_secret_value().encode())
            self._loaded_at = float("inf")

    def _load(self) -> None:
        cache = self._settings.signing_key_cache_seconds
        if time.monotonic() - self._loaded_at < cache:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < cache:
                return
            horizon = self._settings.access_token_ttl_seconds + self._settings.token_leeway_seconds
            try:
                with self._db.statement() as session:
                    rows = session.rows(sql.PUBLISHED_SIGNING_KEYS, horizon=horizon)
            except Unavailable:
                if self._signer is None:
                    raise
                # the database is down: keep signing and publishing the last good keys; try again in 1 s
                log.warning("signing keys could not be reloaded; serving the last good set")
                self._loaded_at = time.monotonic() - cache + min(cache, 1.0)
                return
            active = next((r for r in rows if r.retired_at is None), None)
            if active is None:
                raise RuntimeError("no active signing key; run `python -m auth_service rotate-keys`")
            private = serialization.load_pem_private_key(active.private_key_pem.encode(), password=None)
            self._signer = SigningKey(active.kid, active.algorithm, private)
            self._jwks = json.dumps({"keys": [r.public_jwk for r in rows]}, sort_keys=True)
            self._loaded_at = time.monotonic()

    def jwks(self) -> str:
        """The public JWK set (empty in HS256 mode: a shared secret is never published)."""
        self._load()
        return self._jwks

    def verification_keys(self) -> dict[str, VerificationKey]:
        """Keys that verify tokens this service issued."""
        self._load()
        if self._settings.algorithm == "HS256":
            assert self._signer is not None
            return {HS256_KID: VerificationKey(HS256_KID, "HS256", self._signer.private_key)}
        return keys_from_jwks(self._jwks)

    def issue(self, subject: str, kind: str, roles: list[str], scopes: list[str]) -> tuple[str, int]:
        """A signed access token for the subject and its lifetime in seconds."""
        self._load()
        assert self._signer is not None
        ttl = self._settings.access_token_ttl_seconds
        now = int(time.time())
        claims = {
            "iss": self._settings.token_issuer,
            "aud": self._settings.token_audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "kind": kind,
            "roles": roles,
            "scope": " ".join(scopes),
        }
        headers = {"kid": self._signer.kid, "typ": ACCESS_TOKEN_TYPE}
        token = jwt.encode(
            claims, self._signer.private_key, algorithm=self._signer.algorithm, headers=headers
        )
        return token, ttl
