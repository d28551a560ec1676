"""Token forging for the attack tests: claims, signatures and the stolen current key."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, text


def b64(data: bytes) -> str:
    """Unpadded base64url, as in JWTs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def current_signing_key(db_engine: Engine) -> tuple[str, Any, dict[str, Any]]:
    """(kid, private key, public JWK) of the newest signing key, read as the database owner."""
    with db_engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT kid, private_key_pem, public_jwk FROM auth.signing_keys"
                " WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
            )
        ).one()
    return row.kid, serialization.load_pem_private_key(row.private_key_pem.encode(), None), row.public_jwk


def claims_of(subject: str, **overrides: Any) -> dict[str, Any]:
    """The claims the auth service would issue to a user; an override of None drops the claim."""
    now = int(time.time())
    claims = {
        "iss": "payments-auth",
        "aud": "payments",
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "kind": "user",
        "roles": ["user"],
        "scope": "",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: Any, kid: str, alg: str = "EdDSA", **headers: Any) -> str:
    """A JWT with the access-token header (`typ: at+jwt`) and any extra header fields."""
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt", **headers})
