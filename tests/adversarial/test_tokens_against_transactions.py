"""RFC 8725 attacks on every TransactionService RPC: each is UNAUTHENTICATED and changes nothing.

tests/auth/test_tokens.py aims the same forgeries at the auth service; this
module aims them, and a few more (kid holding path or SQL text, embedded
keys, identity hints in other metadata, a disabled or deleted account), at
the transaction service, whose verifier holds public keys only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial.tools import code_of, every_rpc, record, snapshot
from tests.forge import b64 as _b64
from tests.forge import claims_of, current_signing_key, sign
from tests.helpers import Caller

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def signing(db_engine: Engine) -> tuple[str, Any, dict[str, Any]]:
    """The auth service's newest private key, as a key thief could read it."""
    return current_signing_key(db_engine)


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


def test_every_forged_or_misused_token_is_unauthenticated_on_every_rpc_and_changes_nothing(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    owner_with_data: tuple[Caller, Any, Any],
    signing: tuple[str, Any, dict[str, Any]],
    db_engine: Engine,
) -> None:
    owner, pending, payment = owner_with_data
    kid, key, _ = signing
    # control: the same requests with a correctly signed token do reach the data
    control = bearer(sign(claims_of(owner.id), key, kid))
    for name in ("GetTransaction", "ListTransactions", "ListTransactionEvents"):
        assert (
            code_of(lambda n=name: every_rpc(pending.id, payment.id)[n](tx_stub, control))
            == grpc.StatusCode.OK
        )
    before = snapshot(db_engine, owner.id)
    with db_engine.connect() as conn:
        started = conn.execute(text("SELECT now()")).scalar_one()
    failures: dict[tuple[str, str], grpc.StatusCode] = {}
    calls = 0
    for attack, metadata in attacks(owner, new_user(), signing).items():
        rpcs = every_rpc(pending.id, payment.id)
        for rpc, call in rpcs.items():
            calls += 1
            code = code_of(lambda c=call, md=metadata: c(tx_stub, md))
            if code != UNAUTHENTICATED:
                failures[(attack, rpc)] = code
    assert failures == {}
    assert snapshot(db_engine, owner.id) == before
    with db_engine.connect() as conn:
        leaked = conn.execute(  # a forged create under any identity
            text(
                "SELECT count(*) FROM payments.transactions"
                " WHERE created_at >= :t AND idempotency_key LIKE 'adv-%'"
            ),
            {"t": started},
        ).scalar_one()
    assert leaked == 0
    record(
        "tokens: forgeries x every transaction RPC -> UNAUTHENTICATED, no side effect",
        trials=len(attacks(owner, owner, signing)),
        requests=calls,
        failures=len(failures),
    )


HINTS = ("x-user-id", "x-forwarded-user", "x-principal", "x-subject", "user_id", "x-admin")


def test_identity_hints_in_other_metadata_are_ignored_next_to_a_valid_token(
    tx_stub: Any, new_user: Callable[..., Caller], owner_with_data: tuple[Caller, Any, Any], db_engine: Engine
) -> None:
    owner, pending, payment = owner_with_data
    intruder = new_user()
    hinted = intruder.md + tuple((h, owner.id) for h in HINTS) + (("x-admin", "true"), ("x-roles", "admin"))
    before = snapshot(db_engine, owner.id)
    rpcs = every_rpc(pending.id, payment.id)
    codes = {name: code_of(lambda c=call: c(tx_stub, hinted)) for name, call in rpcs.items()}
    assert codes == {
        "CreateTransaction": grpc.StatusCode.OK,  # as the intruder, for the intruder
        "CreateTransaction(refund)": grpc.StatusCode.NOT_FOUND,
        "GetTransaction": grpc.StatusCode.NOT_FOUND,
        "ListTransactions": grpc.StatusCode.OK,
        "UpdateTransactionStatus": grpc.StatusCode.NOT_FOUND,
        "ListTransactionEvents": grpc.StatusCode.NOT_FOUND,
    }
    listed = tx_stub.ListTransactions(pb.ListTransactionsRequest(), metadata=hinted).transactions
    assert [t.user_id for t in listed] == [intruder.id]  # only the row the intruder created just now
    assert snapshot(db_engine, owner.id) == before
    record(
        "tokens: identity hints in other metadata ignored",
        trials=len(HINTS),
        requests=len(codes) + 1,
        failures=0,
    )


@pytest.mark.parametrize("fate", ["disabled", "deleted"])
def test_a_token_of_a_disabled_or_deleted_account_is_unauthenticated_on_every_rpc(
    tx_stub: Any,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    db_engine: Engine,
    fate: str,
) -> None:
    victim = new_user()
    if fate == "disabled":
        pending = create(victim)
        payment = settle(create(victim, amount_minor=900).id)
        pending_id, payment_id = pending.id, payment.id
    else:  # a deleted account can own nothing (the rows reference it), so aim at ids that exist
        other = new_user()
        pending_id, payment_id = create(other).id, settle(create(other, amount_minor=900).id).id
    with db_engine.begin() as conn:
        if fate == "disabled":
            conn.execute(text("UPDATE auth.users SET disabled = true WHERE id = :i"), {"i": victim.id})
        else:
            conn.execute(text("DELETE FROM auth.users WHERE id = :i"), {"i": victim.id})
    before = snapshot(db_engine, victim.id)
    rpcs = every_rpc(pending_id, payment_id)
    codes = {name: code_of(lambda c=call: c(tx_stub, victim.md)) for name, call in rpcs.items()}
    assert codes == dict.fromkeys(rpcs, UNAUTHENTICATED)
    assert snapshot(db_engine, victim.id) == before
    record(
        f"tokens: {fate} account's still-unexpired token refused", trials=1, requests=len(codes), failures=0
    )


@pytest.mark.parametrize("fate", ["disabled", "deleted"])
def test_a_token_of_a_disabled_or_deleted_service_principal_is_refused_on_every_rpc(
    tx_stub: Any,
    make_service_principal: Callable[[list[str]], Caller],
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    settle: Callable[..., Any],
    db_engine: Engine,
    fate: str,
) -> None:
    settler = make_service_principal(["transactions:settle"])
    owner = new_user()
    pending_id, payment_id = create(owner).id, settle(create(owner, amount_minor=900).id).id
    read = pb.GetTransactionRequest(id=pending_id)
    assert code_of(lambda: tx_stub.GetTransaction(read, metadata=settler.md)) == grpc.StatusCode.OK
    with db_engine.begin() as conn:
        verb = (
            "UPDATE auth.service_principals SET disabled = true"
            if fate == "disabled"
            else "DELETE FROM auth.service_principals"
        )
        conn.execute(text(f"{verb} WHERE id = :i"), {"i": settler.id})
    before = snapshot(db_engine, owner.id)
    rpcs = every_rpc(pending_id, payment_id)
    codes = {name: code_of(lambda c=call: c(tx_stub, settler.md)) for name, call in rpcs.items()}
    # service principals never create (refused before any look-up); everything else needs the principal
    expected = {
        name: grpc.StatusCode.PERMISSION_DENIED if name.startswith("CreateTransaction") else UNAUTHENTICATED
        for name in rpcs
    }
    assert codes == expected
    with pytest.raises(grpc.RpcError) as refused:
        tx_stub.GetTransaction(read, metadata=settler.md)
    assert refused.value.code() == UNAUTHENTICATED  # type: ignore[attr-defined]
    assert snapshot(db_engine, owner.id) == before
    record(
        f"tokens: {fate} service principal's still-unexpired token refused",
        trials=1,
        requests=len(codes) + 2,
        failures=0,
    )
