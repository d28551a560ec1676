"""Access tokens (RFC 8725): every forgery and misuse is UNAUTHENTICATED; rotation keeps old tokens valid."""

from __future__ import annotations

import base64
import json
import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text

from payments.auth.v1 import auth_pb2
from tests.forge import b64 as _b64
from tests.forge import claims_of, current_signing_key
from tests.forge import sign as _sign
from tests.helpers import details_of


@pytest.fixture
def signing(db_engine):
    """The auth service's current private key, as a key thief could read it."""
    return current_signing_key(db_engine)


def _claims(caller, **overrides):
    return claims_of(caller.id, **overrides)


def _rejected(auth_stub, token):
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.GetCurrentUser(
            auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
    return details_of(err.value)


def test_a_correctly_signed_token_is_accepted(auth_stub, new_user, signing):
    kid, key, _ = signing
    caller = new_user()
    token = _sign(_claims(caller), key, kid)
    me = auth_stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {token}"),)
    )
    assert me.user.id == caller.id


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "TOKEN_EXPIRED"),
        ({"nbf": int(time.time()) + 600}, "TOKEN_INVALID"),
        ({"iat": int(time.time()) + 600}, "TOKEN_INVALID"),
        ({"aud": "someone-else"}, "TOKEN_INVALID"),
        ({"iss": "evil-issuer"}, "TOKEN_INVALID"),
        ({"aud": None}, "TOKEN_INVALID"),
        ({"jti": None}, "TOKEN_INVALID"),
        ({"kind": "superuser"}, "TOKEN_INVALID"),
    ],
)
def test_tokens_with_bad_claims_are_unauthenticated(auth_stub, new_user, signing, overrides, reason):
    kid, key, _ = signing
    details = _rejected(auth_stub, _sign(_claims(new_user(), **overrides), key, kid))
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert details.reason == reason


def test_tampered_payload_is_unauthenticated(auth_stub, new_user):
    caller, other = new_user(), new_user()
    header, payload, signature = caller.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"], claims["roles"] = other.id, ["admin"]
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert _rejected(auth_stub, forged).code == grpc.StatusCode.UNAUTHENTICATED


def test_alg_none_is_unauthenticated(auth_stub, new_user, signing):
    kid = signing[0]
    header = _b64(json.dumps({"alg": "none", "kid": kid, "typ": "at+jwt"}).encode())
    token = f"{header}.{_b64(json.dumps(_claims(new_user())).encode())}."
    assert _rejected(auth_stub, token).code == grpc.StatusCode.UNAUTHENTICATED


def test_hs256_signed_with_the_public_key_is_unauthenticated(auth_stub, new_user, signing):
    kid, key, jwk = signing
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "at+jwt"}).encode())
    body = _b64(json.dumps(_claims(new_user())).encode())
    import hashlib
    import hmac

    for secret in (public_pem, jwk["x"].encode()):
        signature = _b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        assert _rejected(auth_stub, f"{header}.{body}.{signature}").code == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_kid_is_unauthenticated(auth_stub, new_user):
    stranger_key = ed25519.Ed25519PrivateKey.generate()
    details = _rejected(auth_stub, _sign(_claims(new_user()), stranger_key, "unknown-kid"))
    assert details.code == grpc.StatusCode.UNAUTHENTICATED


def test_token_signed_by_a_foreign_key_under_a_known_kid_is_unauthenticated(auth_stub, new_user, signing):
    stranger_key = ed25519.Ed25519PrivateKey.generate()
    assert (
        _rejected(auth_stub, _sign(_claims(new_user()), stranger_key, signing[0])).code
        == grpc.StatusCode.UNAUTHENTICATED
    )


@pytest.mark.parametrize(
    "header", [{"jku": "https://evil.example/jwks"}, {"jwk": {"kty": "OKP"}}, {"x5u": "https://e"}]
)
def test_key_carrying_headers_are_refused(auth_stub, new_user, signing, header):
    kid, key, _ = signing
    assert (
        _rejected(auth_stub, _sign(_claims(new_user()), key, kid, **header)).code
        == grpc.StatusCode.UNAUTHENTICATED
    )


def test_refresh_token_used_as_access_token_is_unauthenticated(auth_stub, new_user):
    details = _rejected(auth_stub, new_user().refresh_token)
    assert details.code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer"),),
        (("authorization", "Bearer not.a.jwt"),),
        (("authorization", "garbage"),),
    ],
)
def test_malformed_authorization_is_unauthenticated(auth_stub, metadata):
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_two_authorization_entries_are_unauthenticated(auth_stub, new_user):
    a, b = new_user(), new_user()
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=a.md + b.md)
    assert details_of(err.value).reason == "TOKEN_MALFORMED"


def test_key_rotation_keeps_old_tokens_valid(auth_stub, new_user, auth_service_cli):
    before = new_user()
    old_kid = jwt.get_unverified_header(before.access_token)["kid"]
    result = auth_service_cli("rotate-keys")
    assert result.returncode == 0, result.stderr
    time.sleep(0.3)  # the test server caches keys for 0.2 s
    after = new_user()
    new_kid = jwt.get_unverified_header(after.access_token)["kid"]
    assert new_kid != old_kid
    kids = {k["kid"] for k in json.loads(auth_stub.GetJwks(auth_pb2.GetJwksRequest()).jwks_json)["keys"]}
    assert {old_kid, new_kid} <= kids
    for caller in (before, after):
        assert (
            auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.md).user.id
            == caller.id
        )


def test_retired_key_leaves_the_jwks_once_its_tokens_expired(auth_stub, auth_service_cli, db_engine):
    result = auth_service_cli("rotate-keys")
    assert result.returncode == 0, result.stderr
    with db_engine.begin() as conn:
        expired_kid = conn.execute(
            text(
                "UPDATE auth.signing_keys SET retired_at = now() - interval '1 hour' "
                "WHERE kid = (SELECT kid FROM auth.signing_keys WHERE retired_at IS NOT NULL "
                "ORDER BY retired_at DESC LIMIT 1) RETURNING kid"
            )
        ).scalar_one()
    time.sleep(0.3)
    kids = {k["kid"] for k in json.loads(auth_stub.GetJwks(auth_pb2.GetJwksRequest()).jwks_json)["keys"]}
    assert expired_kid not in kids
    assert kids
