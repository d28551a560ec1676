"""Property-based fuzzing of every AuthService RPC (issue 16, finding 8).

Hostile text (NUL, controls, invisible and oversized values) in every field of Register, Login
(both credential kinds), RefreshToken, RevokeToken, GetCurrentUser and GetJwks: no answer may be
UNKNOWN or INTERNAL (a server bug), nor UNAVAILABLE (nothing here overloads the server). A NUL in
a Login email was INTERNAL with a traceback before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common.server import RunningServer
from tests.adversarial.fuzzing import FORBIDDEN, SPECIAL_TEXT, examples, hostile_text
from tests.adversarial.tools import record

pytestmark = pytest.mark.slow
SENT: Counter[str] = Counter()
text = st.one_of(hostile_text, st.sampled_from([*SPECIAL_TEXT, "a@b.co", "x" * 1016, "sp_" + "\x00"]))


@pytest.fixture(scope="module")
def stub(start_auth: Callable[..., RunningServer]) -> Iterator[Any]:
    """An auth server of its own, without throttles, so that every example reaches the data."""
    server = start_auth(
        login_max_failures=10**6, login_account_max_failures=10**6, login_peer_max_failures=10**6
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)
    record("fuzzing: every AuthService RPC", trials=len(SENT), requests=sum(SENT.values()), failures=0)


def send(method: str, call: Callable[[], Any]) -> None:
    SENT[method] += 1
    try:
        call()
    except grpc.RpcError as err:
        assert err.code() not in FORBIDDEN, (method, err.code(), err.details())


@examples(60)
@given(email=text, password=text, name=text)
def test_hostile_registrations_get_clear_answers(stub: Any, email: str, password: str, name: str) -> None:
    send(
        "Register",
        lambda: stub.Register(auth_pb2.RegisterRequest(email=email, password=password, full_name=name)),
    )


@examples(80)
@given(identity=text, secret=text, client=st.booleans())
def test_hostile_logins_get_clear_answers(stub: Any, identity: str, secret: str, client: bool) -> None:
    if client:
        request = auth_pb2.LoginRequest(
            client=auth_pb2.ClientCredentials(client_id=identity, client_secret=secret)
        )
    else:
        request = auth_pb2.LoginRequest(
            password=auth_pb2.PasswordCredentials(email=identity, password=secret)
        )
    send("Login", lambda: stub.Login(request))


@examples(60)
@given(token=text, revoke=st.booleans())
def test_hostile_refresh_and_revoke_tokens_get_clear_answers(stub: Any, token: str, revoke: bool) -> None:
    if revoke:
        send("RevokeToken", lambda: stub.RevokeToken(auth_pb2.RevokeTokenRequest(refresh_token=token)))
    else:
        send("RefreshToken", lambda: stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=token)))


@examples(60)
@given(token=text)
def test_hostile_bearer_tokens_get_clear_answers(stub: Any, token: str) -> None:
    printable = "".join(c for c in token if 0x20 <= ord(c) < 0x7F)  # metadata values must be printable ASCII
    metadata = (("authorization", f"Bearer {printable}"),)
    send("GetCurrentUser", lambda: stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=metadata))
    send("GetJwks", lambda: stub.GetJwks(auth_pb2.GetJwksRequest()))
