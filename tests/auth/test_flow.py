"""The happy path of the auth service through real stubs."""

from __future__ import annotations

import grpc
import jwt
import pytest

from payments.auth.v1 import auth_pb2
from tests.helpers import details_of


def test_registered_user_logs_in_and_reads_their_profile(auth_stub, new_user):
    caller = new_user()
    me = auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.md).user
    assert me.id == caller.id
    assert me.email == caller.email
    assert list(me.roles) == [auth_pb2.ROLE_USER]
    assert me.created_at.seconds > 0


def test_login_returns_bearer_access_token_with_required_claims(auth_stub, new_user):
    caller = new_user()
    header = jwt.get_unverified_header(caller.access_token)
    claims = jwt.decode(caller.access_token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["kid"] and header["typ"] == "at+jwt"
    assert {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "roles", "kind"} <= claims.keys()
    assert claims["sub"] == caller.id
    assert claims["exp"] - claims["iat"] == 900
    assert caller.refresh_token.startswith("rt_")


def test_current_user_without_token_is_unauthenticated(auth_stub):
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest())
    details = details_of(err.value)
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert details.reason == "TOKEN_MISSING"
    assert details.domain == "auth.payments"


def test_jwks_publishes_public_keys_only(auth_stub, new_user):
    caller = new_user()
    jwks = jwt.PyJWKSet.from_json(auth_stub.GetJwks(auth_pb2.GetJwksRequest()).jwks_json)
    kid = jwt.get_unverified_header(caller.access_token)["kid"]
    assert kid in {k.key_id for k in jwks.keys}
    assert all("d" not in k._jwk_data for k in jwks.keys)
