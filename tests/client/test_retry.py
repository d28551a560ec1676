"""Only safe calls are retried, with backoff, within one deadline, reusing the idempotency key."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

import payments_client as pc
from payments_client.errors import StatusDetails
from payments_client.retry import is_retryable
from tests.client.proxy import LossyProxy
from tests.client.recorder import Recorder
from tests.client.scripted import Failure, ScriptedServer, start_scripted
from tests.helpers import Caller

Code = grpc.StatusCode
PATIENT = pc.RetryPolicy(max_attempts=8, initial_backoff_seconds=0.1, max_backoff_seconds=0.5)


def rows_with_key(db_engine: Engine, user_id: str, key: str) -> int:
    with db_engine.connect() as conn:
        query = "SELECT count(*) FROM payments.transactions WHERE user_id = :u AND idempotency_key = :k"
        return int(conn.execute(text(query), {"u": user_id, "k": key}).scalar_one())


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = start_scripted()
    yield server
    server.server.stop(0)


def test_a_lost_reply_is_retried_with_the_same_idempotency_key_and_leaves_one_row(
    make_client: Callable[..., pc.PaymentsClient],
    alice: Caller,
    tx_proxy: LossyProxy,
    recorder: Recorder,
    db_engine: Engine,
    secret_watch: Any,
) -> None:
    client = make_client(alice, tx=tx_proxy.address, policy=PATIENT)
    tx_proxy.lose_replies(1)  # the server commits, the caller sees UNAVAILABLE
    payment = client.create_payment(1250, "EUR", description="lost reply")
    attempts = recorder.of("CreateTransaction")
    assert tx_proxy.lost == 1 and len(attempts) >= 2
    assert {a.request.idempotency_key for a in attempts} == {payment.idempotency_key}
    (request_id,) = {a.metadata["x-request-id"] for a in attempts}  # one logical call in the logs
    served = [json.loads(line) for line in secret_watch.lines if request_id in line]
    assert [(s["rpc_method"].rsplit("/", 1)[-1], s["rpc_code"]) for s in served][:2] == [
        ("CreateTransaction", "OK"),  # the reply that was lost: the work was done
        ("CreateTransaction", "OK"),  # the retry: the original transaction again
    ]
    assert rows_with_key(db_engine, alice.id, payment.idempotency_key) == 1


def test_refused_connections_are_retried_until_the_server_answers(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, tx_proxy: LossyProxy, recorder: Recorder
) -> None:
    client = make_client(alice, tx=tx_proxy.address, policy=PATIENT)
    tx_proxy.refuse_connections(2)
    assert list(client.list_transactions()) == []
    assert tx_proxy.refused == 2 and len(recorder.of("ListTransactions")) >= 2


def test_register_is_tried_once_because_a_lost_reply_may_hide_a_created_account(
    auth_address: str,
) -> None:
    proxy = LossyProxy(int(auth_address.rsplit(":", 1)[1]))
    email, password = f"lost-{uuid.uuid4().hex[:10]}@example.com", f"pw-{uuid.uuid4().hex}"
    with pc.open_channel(proxy.address) as channel:
        auth = pc.AuthClient(channel, policy=PATIENT)
        proxy.lose_replies(1)
        with pytest.raises(pc.PaymentsError) as lost:
            auth.register(email, password)
        assert lost.value.code() == Code.UNAVAILABLE and lost.value.attempts == 1
    proxy.close()
    # straight to the server (the proxied channel may still be reconnecting): the account exists
    with pc.open_channel(auth_address) as channel, pytest.raises(pc.PaymentsError) as again:
        pc.AuthClient(channel, policy=PATIENT).register(email, password)
    assert again.value.code() == Code.ALREADY_EXISTS  # the first one did create the account


def _invalid_currency(client: pc.PaymentsClient) -> None:
    client.create_payment(100, "XXX")


def _missing(client: pc.PaymentsClient) -> None:
    client.get_transaction(str(uuid.uuid4()))


def _key_reused(client: pc.PaymentsClient) -> None:
    client.create_payment(100, "EUR", idempotency_key="order-7")
    client.create_payment(999, "EUR", idempotency_key="order-7")


def _refund_of_pending(client: pc.PaymentsClient) -> None:
    client.create_refund(client.create_payment(100, "EUR").id, 50, "EUR")


def _owner_settles(client: pc.PaymentsClient) -> None:
    client.update_status(client.create_payment(100, "EUR").id, "COMPLETED")


@pytest.mark.parametrize(
    ("provoke", "code", "method"),
    [
        (_invalid_currency, Code.INVALID_ARGUMENT, "CreateTransaction"),
        (_missing, Code.NOT_FOUND, "GetTransaction"),
        (_key_reused, Code.ALREADY_EXISTS, "CreateTransaction"),
        (_refund_of_pending, Code.FAILED_PRECONDITION, "CreateTransaction"),
        (_owner_settles, Code.PERMISSION_DENIED, "UpdateTransactionStatus"),
    ],
)
def test_non_retryable_codes_are_raised_after_one_attempt(
    make_client: Callable[..., pc.PaymentsClient],
    alice: Caller,
    recorder: Recorder,
    provoke: Callable[[pc.PaymentsClient], None],
    code: grpc.StatusCode,
    method: str,
) -> None:
    client = make_client(alice, policy=PATIENT)
    with pytest.raises(pc.PaymentsError) as caught:
        provoke(client)
    assert caught.value.code() == code and caught.value.attempts == 1
    assert caught.value.request_id == recorder.of(method)[-1].metadata["x-request-id"]
    if code == Code.INVALID_ARGUMENT:
        assert "currency" in caught.value.violations


def test_every_call_carries_a_token_a_request_id_and_a_deadline(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, recorder: Recorder
) -> None:
    client = make_client(alice, timeout=3.0)
    payment = client.create_payment(100, "EUR")
    client.get_transaction(payment.id)
    list(client.list_transactions())
    client.update_status(payment.id, "CANCELLED")
    client.list_events(payment.id)
    assert len(recorder.attempts) == 5
    for attempt in recorder.attempts:
        assert attempt.timeout is not None and 0 < attempt.timeout <= 3.0
        assert attempt.metadata["authorization"].startswith("Bearer ")
        assert attempt.metadata["x-request-id"]
    assert len({a.metadata["x-request-id"] for a in recorder.attempts}) == 5


def test_the_deadline_bounds_the_whole_call_including_retries(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, db_engine: Engine
) -> None:
    client = make_client(alice, timeout=1.0, policy=PATIENT)
    payment = client.create_payment(100, "EUR")
    with db_engine.connect() as blocker:
        blocker.execute(
            text("SELECT 1 FROM payments.transactions WHERE id = :i FOR UPDATE"), {"i": payment.id}
        )
        started = time.monotonic()
        with pytest.raises(pc.PaymentsError) as caught:
            client.update_status(payment.id, "CANCELLED")
        elapsed = time.monotonic() - started
        blocker.rollback()
    assert caught.value.code() == Code.DEADLINE_EXCEEDED and elapsed < 1.8


def test_the_server_retry_delay_is_honoured_and_the_key_reused(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    scripted.servicer.script = [Failure(Code.UNAVAILABLE, retry_delay=0.5)]
    client = make_client(alice, tx=scripted.address, policy=PATIENT, timeout=5.0)
    client.create_payment(100, "EUR")
    first, second = scripted.servicer.received
    assert second.at - first.at >= 0.5
    assert first.request.idempotency_key == second.request.idempotency_key
    assert first.time_remaining is not None and second.time_remaining is not None
    # one deadline for all attempts: the second had 0.5 s less (a loaded machine may take a while
    # to send the first, so only its upper bound is exact)
    assert 2.0 < first.time_remaining <= 5.0 and second.time_remaining < first.time_remaining - 0.4


def test_a_conflict_on_create_is_retried_but_a_stale_etag_is_not(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    client = make_client(alice, tx=scripted.address, policy=PATIENT)
    scripted.servicer.script = [Failure(Code.ABORTED, "CONCURRENT_UPDATE")]
    client.create_payment(100, "EUR")
    assert len(scripted.servicer.received) == 2
    scripted.servicer.script = [Failure(Code.ABORTED, "ETAG_MISMATCH")]
    with pytest.raises(pc.PaymentsError) as caught:
        client.update_status("tx-1", "CANCELLED", etag="stale")
    assert caught.value.reason == "ETAG_MISMATCH" and caught.value.attempts == 1


def test_resource_exhausted_is_retried_only_when_the_server_says_when(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    client = make_client(alice, tx=scripted.address, policy=PATIENT)
    scripted.servicer.script = [Failure(Code.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE")]
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.attempts == 1
    scripted.servicer.script = [Failure(Code.RESOURCE_EXHAUSTED, "THROTTLED", retry_delay=0.1)]
    client.create_payment(100, "EUR")
    assert len(scripted.servicer.received) == 3


def test_attempts_are_bounded(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    policy = pc.RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01)
    client = make_client(alice, tx=scripted.address, policy=policy)
    scripted.servicer.script = [Failure(Code.UNAVAILABLE)] * 10
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.attempts == len(scripted.servicer.received) == 3


def test_a_retry_delay_beyond_the_deadline_fails_at_once_instead_of_sleeping(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, scripted: ScriptedServer
) -> None:
    client = make_client(alice, tx=scripted.address, policy=PATIENT, timeout=2.0)
    scripted.servicer.script = [Failure(Code.UNAVAILABLE, retry_delay=30.0)]
    started = time.monotonic()
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.status.retry_delay == 30.0 and time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("code", "reason", "delay", "idempotent", "expected"),
    [
        (Code.UNAVAILABLE, "", None, True, True),
        (Code.UNAVAILABLE, "", None, False, False),
        (Code.DEADLINE_EXCEEDED, "", None, True, True),
        (Code.ABORTED, "CONCURRENT_UPDATE", None, True, True),
        (Code.ABORTED, "ETAG_MISMATCH", None, True, False),
        (Code.RESOURCE_EXHAUSTED, "", 1.0, True, True),
        (Code.RESOURCE_EXHAUSTED, "", None, True, False),
        (Code.UNAUTHENTICATED, "", None, True, False),  # handled by re-authenticating, not here
        (Code.INVALID_ARGUMENT, "", None, True, False),
        (Code.ALREADY_EXISTS, "", None, True, False),
        (Code.FAILED_PRECONDITION, "", None, True, False),
        (Code.PERMISSION_DENIED, "", None, True, False),
        (Code.NOT_FOUND, "", None, True, False),
        (Code.INTERNAL, "", None, True, False),
        (Code.UNKNOWN, "", None, True, False),
    ],
)
def test_the_retry_policy_table(
    code: grpc.StatusCode, reason: str, delay: float | None, idempotent: bool, expected: bool
) -> None:
    details = StatusDetails(code, "", reason=reason, retry_delay=delay)
    assert is_retryable(details, idempotent=idempotent) is expected


def test_backoff_grows_with_jitter_and_stays_capped() -> None:
    policy = pc.RetryPolicy(initial_backoff_seconds=0.1, max_backoff_seconds=1.0)
    for failed in range(1, 10):
        cap = min(1.0, 0.1 * 2 ** (failed - 1))
        assert all(cap / 2 <= policy.backoff(failed) <= cap for _ in range(50))
