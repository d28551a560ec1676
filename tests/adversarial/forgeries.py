"""RFC 8725 forgeries and misuses of a token, as metadata to send to the transaction service.

`attacks` builds every one (none, malformed, wrong scheme, `alg: none`, HS256 keyed with the
public key, tampered payload or header, `kid` holding path or SQL text, embedded keys, bad
claims, a refresh token, two `authorization` entries, identity hints without a token), each
claiming to be its owner; tests/auth/test_tokens.py aims the same kinds at the auth service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.forge import b64 as _b64
from tests.forge import claims_of, sign
from tests.helpers import Caller

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    signature = _b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"


def raw_eddsa(header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
    """Sign any header, even one PyJWT refuses to write (e.g. a non-string kid)."""
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(key.sign(f'{head}.{body}'.encode()))}"


def attacks(owner: Caller, other: Caller, signing: tuple[str, Any, dict[str, Any]]) -> dict[str, Metadata]:
    """Metadata of every forgery; each claims to be `owner` (impersonation is the prize)."""
    kid, key, jwk = signing
    stranger = ed25519.Ed25519PrivateKey.generate()
    good = claims_of(owner.id)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, payload, signature = owner.access_token.split(".")
    promoted = json.loads(base64.urlsafe_b64decode(payload + "=="))
    promoted["roles"], promoted["scope"] = ["admin"], "transactions:settle"
    bare_header = json.loads(base64.urlsafe_b64decode(header + "=="))
    stranger_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(stranger.public_key()))
    out: dict[str, Metadata] = {
        "no metadata": (),
        "empty bearer": (("authorization", "Bearer "),),
        "not a JWT": bearer("not.a.jwt"),
        "two segments": bearer("e30.e30"),
        "punctuation junk": (("authorization", "Bearer !$%&'*+-.^_`|~#"),),
        "long junk (under the metadata limit)": bearer("A" * 4000),
        "token in authorization-bin": (("authorization-bin", owner.access_token.encode()),),  # type: ignore[dict-item]
        "wrong scheme Basic": (("authorization", "Basic dXNlcjpwYXNz"),),
        "wrong scheme Token": (("authorization", f"Token {owner.access_token}"),),
        "token without scheme": (("authorization", owner.access_token),),
        "alg none": (
            (
                "authorization",
                "Bearer "
                + _b64(json.dumps({"alg": "none", "kid": kid, "typ": "at+jwt"}).encode())
                + "."
                + _b64(json.dumps(good).encode())
                + ".",
            ),
        ),
        "HS256 keyed with the public key PEM": bearer(
            hs256({"alg": "HS256", "kid": kid, "typ": "at+jwt"}, good, public_pem)
        ),
        "HS256 keyed with the JWK x": bearer(
            hs256({"alg": "HS256", "kid": kid, "typ": "at+jwt"}, good, jwk["x"].encode())
        ),
        "HS256 under the legacy hs256 kid": bearer(
            hs256({"alg": "HS256", "kid": "hs256", "typ": "at+jwt"}, good, b"")
        ),
        "tampered payload (promoted to admin)": bearer(
            ".".join([header, _b64(json.dumps(promoted).encode()), signature])
        ),
        "tampered header (alg ES256)": bearer(
            ".".join([_b64(json.dumps({**bare_header, "alg": "ES256"}).encode()), payload, signature])
        ),
        "tampered header (typ JWT)": bearer(
            ".".join([_b64(json.dumps({**bare_header, "typ": "JWT"}).encode()), payload, signature])
        ),
        "signature of another user's token": bearer(
            ".".join([header, payload, other.access_token.split(".")[2]])
        ),
        "foreign key under the real kid": bearer(sign(good, stranger, kid)),
        "kid with path text": bearer(sign(good, stranger, "../../../../../../dev/null")),
        "kid with an absolute path": bearer(sign(good, stranger, "/etc/passwd")),
        "kid /dev/null with an empty HS256 key": bearer(
            hs256({"alg": "HS256", "kid": "/dev/null", "typ": "at+jwt"}, good, b"")
        ),
        "kid with SQL text": bearer(sign(good, stranger, "x' UNION SELECT 'k' --")),
        "kid with SQL that would drop": bearer(
            sign(good, stranger, "'; DROP TABLE payments.transactions; --")
        ),
        "kid not a string": bearer(raw_eddsa({"alg": "EdDSA", "kid": 7, "typ": "at+jwt"}, good, key)),
        "kid as a list": bearer(raw_eddsa({"alg": "EdDSA", "kid": [kid], "typ": "at+jwt"}, good, key)),
        "no kid": bearer(jwt.encode(good, key, algorithm="EdDSA", headers={"typ": "at+jwt"})),
        "jku header (real key)": bearer(sign(good, key, kid, jku="https://evil.example/jwks.json")),
        "x5u header (real key)": bearer(sign(good, key, kid, x5u="https://evil.example/cert.pem")),
        "jwk header (real key)": bearer(sign(good, key, kid, jwk=jwk)),
        "jwk header carrying the forger's key": bearer(sign(good, stranger, kid, jwk=stranger_jwk)),
        "x5c header (real key)": bearer(sign(good, key, kid, x5c=["MIIB"])),
        "expired": bearer(sign(claims_of(owner.id, exp=int(time.time()) - 60), key, kid)),
        "future nbf": bearer(sign(claims_of(owner.id, nbf=int(time.time()) + 600), key, kid)),
        "future iat": bearer(sign(claims_of(owner.id, iat=int(time.time()) + 600), key, kid)),
        "wrong aud": bearer(sign(claims_of(owner.id, aud="someone-else"), key, kid)),
        "missing aud": bearer(sign(claims_of(owner.id, aud=None), key, kid)),
        "wrong iss": bearer(sign(claims_of(owner.id, iss="evil-issuer"), key, kid)),
        "missing iss": bearer(sign(claims_of(owner.id, iss=None), key, kid)),
        "missing exp": bearer(sign(claims_of(owner.id, exp=None), key, kid)),
        "missing sub": bearer(sign(claims_of(owner.id, sub=None), key, kid)),
        "sub holding SQL text": bearer(sign(claims_of("' OR '1'='1"), key, kid)),
        "unknown kind": bearer(sign(claims_of(owner.id, kind="superuser"), key, kid)),
        "refresh token as access token": bearer(owner.refresh_token),
        "two authorization entries (both valid)": owner.md + other.md,
        "two authorization entries (valid, junk)": (*owner.md, ("authorization", "Bearer junk")),
        "identity hints without a token": (
            ("x-user-id", owner.id),
            ("x-forwarded-user", owner.id),
            ("x-principal", owner.id),
            ("user-id", owner.id),
        ),
    }
    return out
