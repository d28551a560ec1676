"""Hardening of the login edges (issue 16: findings 4, 5, 7, 8, 9, 13), real servers and database.

The other address is [::1]; `clean_ipv6_peer` forgets its counters before and after each test, so
that other tests on [::1] are not affected.

Each test failed against the code before its fix (the figures are in tests/README.md).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common.server import RunningServer
from tests.adversarial.tools import record
from tests.helpers import Caller, details_of

PASSWORD = "the owner's real password"


def login(stub: Any, email: str, password: str) -> Any:
    credentials = auth_pb2.PasswordCredentials(email=email, password=password)
    return stub.Login(auth_pb2.LoginRequest(password=credentials), timeout=20)


def outcome(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    try:
        call()
    except grpc.RpcError as err:
        details = details_of(err)
        return details.code, details.reason
    return grpc.StatusCode.OK, ""


def registered(stub: Any) -> str:
    email = f"edge-{uuid.uuid4().hex[:10]}@example.com"
    stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD))
    return email


def test_concurrent_wrong_passwords_get_no_more_checks_than_the_limit_and_the_owner_still_logs_in(
    start_auth: Callable[..., RunningServer], clean_ipv6_peer: None
) -> None:
    server = start_auth(
        login_max_failures=5, login_lockout_seconds=30.0, password_hash_concurrency=2, grpc_host="[::]"
    )
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        email = registered(stub)
        with ThreadPoolExecutor(40) as pool:
            codes = Counter(
                pool.map(lambda i: outcome(lambda: login(stub, email, f"guess {i}"))[0], range(40))
            )
    # only the first five attempts reached the password check; the rest were refused before hashing
    assert codes[grpc.StatusCode.UNAUTHENTICATED] <= 5, codes
    assert codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 35, codes
    # the owner, from another address, is not locked out: the account-wide limit is far higher
    with grpc.insecure_channel(f"[::1]:{server.port}") as other:
        assert login(auth_pb2_grpc.AuthServiceStub(other), email, PASSWORD).tokens.access_token
    record(
        "login: 40 concurrent guesses", trials=1, requests=40, checked=codes[grpc.StatusCode.UNAUTHENTICATED]
    )


def test_wrong_client_secrets_from_one_address_do_not_lock_the_service_principal_out_elsewhere(
    start_auth: Callable[..., RunningServer],
    make_service_principal: Callable[[list[str]], Caller],
    clean_ipv6_peer: None,
) -> None:
    server = start_auth(login_max_failures=3, login_lockout_seconds=30.0, grpc_host="[::]")
    principal = make_service_principal(["transactions:settle"])

    def client_login(address: str, secret: str) -> tuple[grpc.StatusCode, str]:
        with grpc.insecure_channel(address) as channel:
            creds = auth_pb2.ClientCredentials(client_id=principal.email, client_secret=secret)
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            return outcome(lambda: stub.Login(auth_pb2.LoginRequest(client=creds), timeout=10))

    attacker, real = f"[::1]:{server.port}", f"127.0.0.1:{server.port}"
    seen = [client_login(attacker, f"wrong-{i}") for i in range(6)]
    assert seen[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED")
    assert client_login(real, principal.password) == (grpc.StatusCode.OK, "")
    record("login: client id guessed from another address", trials=1, requests=7, failures=0)


def test_a_register_flood_from_one_address_is_throttled_and_existing_users_keep_logging_in(
    start_auth: Callable[..., RunningServer], db_engine: Engine, clean_ipv6_peer: None
) -> None:
    server = start_auth(register_peer_max=20, password_hash_concurrency=2, grpc_host="[::]")
    marker = uuid.uuid4().hex[:8]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        with grpc.insecure_channel(f"[::1]:{server.port}") as own:  # the real user's address
            owner = auth_pb2_grpc.AuthServiceStub(own)
            email = registered(owner)

            def flood(i: int) -> grpc.StatusCode:
                request = auth_pb2.RegisterRequest(email=f"flood-{marker}-{i}@example.com", password=PASSWORD)
                return outcome(lambda: stub.Register(request, timeout=20))[0]

            with ThreadPoolExecutor(16) as pool:
                floods = pool.map(flood, range(120))
                logins = [outcome(lambda: login(owner, email, PASSWORD))[0] for _ in range(10)]
                codes = Counter(floods)
    with db_engine.connect() as conn:
        created = conn.execute(
            text("SELECT count(*) FROM auth.users WHERE email LIKE :p"), {"p": f"flood-{marker}-%"}
        ).scalar_one()
    assert created <= 20 and codes[grpc.StatusCode.RESOURCE_EXHAUSTED] >= 100, (created, codes)
    assert logins == [grpc.StatusCode.OK] * 10
    record("register: flood from one address", trials=1, requests=130, created=created, failures=0)


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("nul\x00@example.com", "control"),
        ("a" * 1016, "long"),
    ],
)
def test_a_hostile_login_email_is_a_clear_client_error_and_counted(
    auth_stub: Any, email: str, reason: str
) -> None:
    code, _ = outcome(lambda: login(auth_stub, email, "some guess or other"))
    expected = grpc.StatusCode.INVALID_ARGUMENT if reason == "control" else grpc.StatusCode.UNAUTHENTICATED
    assert code == expected  # before: INTERNAL with a traceback, and UNAVAILABLE for the long one


def test_a_nul_in_a_client_id_is_invalid_argument(auth_stub: Any) -> None:
    creds = auth_pb2.ClientCredentials(client_id="sp_\x00", client_secret="x")
    assert outcome(lambda: auth_stub.Login(auth_pb2.LoginRequest(client=creds)))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("{}\u200b@example.com", grpc.StatusCode.INVALID_ARGUMENT),  # zero-width space
        ("\u202e{}@example.com", grpc.StatusCode.INVALID_ARGUMENT),  # right-to-left override
        ("{}\x7f@example.com", grpc.StatusCode.INVALID_ARGUMENT),  # DEL
        ("{}\x85@example.com", grpc.StatusCode.INVALID_ARGUMENT),  # a C1 control
        ("FULLWIDTH", grpc.StatusCode.ALREADY_EXISTS),  # folded by NFKC into the taken address
    ],
)
def test_a_look_alike_email_is_refused_or_folded_into_the_account_it_imitates(
    auth_stub: Any, variant: str, expected: grpc.StatusCode
) -> None:
    local = f"look{uuid.uuid4().hex[:8]}"
    auth_stub.Register(auth_pb2.RegisterRequest(email=f"{local}@example.com", password=PASSWORD))
    if variant == "FULLWIDTH":
        email = (
            "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in local)
            + "@example.com"
        )
    else:
        email = variant.format(local)
    code, _ = outcome(lambda: auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=PASSWORD)))
    assert code == expected


def test_the_dashboards_forwarded_address_counts_only_when_it_is_a_trusted_proxy(
    start_auth: Callable[..., RunningServer], auth_stub: Any, clean_ipv6_peer: None
) -> None:
    """Dashboard logins all come from the dashboard: trusted, each person's failures are theirs."""
    owner = registered(auth_stub)
    someone, other = (f"198.18.{uuid.uuid4().int % 250}.{n}" for n in (1, 2))

    def attempts(
        server: RunningServer,
    ) -> tuple[list[tuple[grpc.StatusCode, str]], tuple[grpc.StatusCode, str]]:
        with grpc.insecure_channel(f"[::1]:{server.port}") as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)

            def via(client: str, email: str, password: str) -> tuple[grpc.StatusCode, str]:
                credentials = auth_pb2.PasswordCredentials(email=email, password=password)
                request = auth_pb2.LoginRequest(password=credentials)
                return outcome(
                    lambda: stub.Login(request, metadata=(("x-forwarded-for", client),), timeout=20)
                )

            failures = [via(someone, f"nobody-{uuid.uuid4().hex[:8]}@example.com", "wrong") for _ in range(4)]
            return failures, via(other, owner, PASSWORD)

    trusting = start_auth(login_peer_max_failures=3, trusted_proxies="::1, 10.0.0.0/8", grpc_host="[::]")
    failures, owner_login = attempts(trusting)
    assert failures[-1] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED")  # that person, locked
    assert owner_login == (grpc.StatusCode.OK, "")  # another person through the same proxy is not

    ignoring = start_auth(login_peer_max_failures=3, trusted_proxies="10.0.0.0/8", grpc_host="[::]")
    failures, owner_login = attempts(ignoring)  # [::1] is no proxy it trusts: its header counts for nothing
    assert failures[-1] == owner_login == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LOGIN_THROTTLED")
