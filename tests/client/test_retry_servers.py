"""Retries against the real servers: only safe calls are retried, reusing the idempotency key.

A lost reply or a refused connection (a lossy proxy in front of the transaction server) is
retried with the same key and leaves one row; Register and every non-retryable code are tried
once; every call carries a token, a request id and a deadline that bounds all its attempts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

import payments_client as pc
from tests.client.proxy import LossyProxy
from tests.client.recorder import Recorder
from tests.client.retrying import PATIENT, Code
from tests.helpers import Caller


def rows_with_key(db_engine: Engine, user_id: str, key: str) -> int:
    with db_engine.connect() as conn:
        query = "SELECT count(*) FROM payments.transactions WHERE user_id = :u AND idempotency_key = :k"
        return int(conn.execute(text(query), {"u": user_id, "k": key}).scalar_one())


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
