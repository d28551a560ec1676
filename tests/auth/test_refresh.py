"""Refresh tokens: single use with rotation, family revocation on reuse, logout."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text

from payments.auth.v1 import auth_pb2
from tests.helpers import details_of


def _refresh(stub, token):
    return stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token)).tokens


def _refresh_fails(stub, token):
    with pytest.raises(grpc.RpcError) as err:
        _refresh(stub, token)
    return details_of(err.value)


def test_refresh_rotates_the_token_and_issues_a_working_access_token(auth_stub, new_user, secret_watch):
    caller = new_user()
    tokens = _refresh(auth_stub, caller.refresh_token)
    secret_watch.secrets.update({tokens.access_token, tokens.refresh_token})
    assert tokens.refresh_token != caller.refresh_token
    me = auth_stub.GetCurrentUser(
        auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", f"Bearer {tokens.access_token}"),)
    )
    assert me.user.id == caller.id


def test_reusing_a_spent_refresh_token_revokes_the_whole_family(auth_stub, new_user, secret_watch):
    caller = new_user()
    second = _refresh(auth_stub, caller.refresh_token)
    secret_watch.secrets.update({second.access_token, second.refresh_token})
    reuse = _refresh_fails(auth_stub, caller.refresh_token)
    assert reuse.code == grpc.StatusCode.UNAUTHENTICATED
    assert reuse.reason == "REFRESH_TOKEN_REUSED"
    # the attacker's (or victim's) newer token of the family is dead too
    assert _refresh_fails(auth_stub, second.refresh_token).code == grpc.StatusCode.UNAUTHENTICATED


def test_refresh_tokens_are_stored_only_as_hashes(new_user, db_engine):
    caller = new_user()
    with db_engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM auth.refresh_tokens")).scalars().all()
    assert all(len(h) == 32 for h in stored)
    assert all(caller.refresh_token.encode() not in bytes(h) for h in stored)


def test_revoke_ends_the_family_and_is_idempotent(auth_stub, new_user):
    caller = new_user()
    auth_stub.RevokeToken(auth_pb2.RevokeTokenRequest(refresh_token=caller.refresh_token))
    auth_stub.RevokeToken(auth_pb2.RevokeTokenRequest(refresh_token=caller.refresh_token))
    assert _refresh_fails(auth_stub, caller.refresh_token).reason == "REFRESH_TOKEN_INVALID"


def test_unknown_or_empty_refresh_token_is_rejected(auth_stub):
    assert _refresh_fails(auth_stub, "rt_not-a-real-token").code == grpc.StatusCode.UNAUTHENTICATED
    assert _refresh_fails(auth_stub, "").code == grpc.StatusCode.INVALID_ARGUMENT


def test_service_principal_logs_in_with_scopes_and_no_refresh_token(make_service_principal, auth_stub):
    principal = make_service_principal(["transactions:settle"])
    import jwt

    claims = jwt.decode(principal.access_token, options={"verify_signature": False})
    assert claims["kind"] == "service"
    assert claims["scope"] == "transactions:settle"
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=principal.md)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_wrong_client_secret_is_unauthenticated(make_service_principal, auth_stub):
    principal = make_service_principal([])
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.Login(
            auth_pb2.LoginRequest(
                client=auth_pb2.ClientCredentials(client_id=principal.email, client_secret="nope")
            )
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_disabled_user_token_and_refresh_stop_working(auth_stub, new_user, db_engine):
    caller = new_user()
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE auth.users SET disabled = true WHERE id = :i"), {"i": caller.id})
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _refresh_fails(auth_stub, caller.refresh_token).code == grpc.StatusCode.UNAUTHENTICATED
