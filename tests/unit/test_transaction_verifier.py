"""In the legacy HS256 mode the transaction service verifies the auth service's kid "hs256" tokens."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from payments_common.config import TransactionSettings
from payments_common.errors import Unauthenticated
from transaction_service.app import verifier

SECRET = "s" * 40


def token(secret: str = SECRET, kid: str = "hs256") -> str:
    now = int(time.time())
    claims = {
        "iss": "payments-auth",
        "aud": "payments",
        "sub": str(uuid.uuid4()),
        "exp": now + 60,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "kind": "user",
        "roles": ["user"],
        "scope": "",
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid, "typ": "at+jwt"})


def hs256_settings() -> TransactionSettings:
    return TransactionSettings(_env_file=None, algorithm="HS256", secret_key=SECRET)  # type: ignore[call-arg]


def test_an_hs256_token_signed_with_the_shared_secret_is_accepted() -> None:
    principal = verifier(hs256_settings()).verify(token())
    assert principal.kind == "user" and principal.roles == frozenset({"user"})


@pytest.mark.parametrize("forged", [token(secret="x" * 40), token(kid="other")])
def test_an_hs256_token_with_another_secret_or_kid_is_refused(forged: str) -> None:
    with pytest.raises(Unauthenticated):
        verifier(hs256_settings()).verify(forged)
