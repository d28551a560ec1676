"""Tokens are attached, renewed before expiry and recovered after a refusal without the caller noticing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

import payments_client as pc
from tests.client.recorder import Recorder
from tests.helpers import Caller

SHORT_TTL = 30  # the auth service's minimum access-token lifetime


@pytest.fixture(scope="module")
def short_lived_auth(start_auth: Callable[..., Any]) -> str:
    """An auth server (same database and keys) issuing 30-second access tokens."""
    return f"127.0.0.1:{start_auth(access_token_ttl_seconds=SHORT_TTL, auth_metrics_port=None).port}"


def test_the_access_token_is_refreshed_before_it_expires_and_calls_keep_working(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, short_lived_auth: str, recorder: Recorder
) -> None:
    client = make_client(alice, auth=short_lived_auth, refresh_margin_seconds=SHORT_TTL + 30)
    first = client.create_payment(100, "EUR")
    second = client.create_payment(200, "EUR")
    sent = [a.metadata["authorization"] for a in recorder.of("CreateTransaction")]
    assert len(sent) == 2 and sent[0] != sent[1]  # within the margin: renewed before each call
    assert client.get_transaction(first.id).id == first.id and second.id != first.id


def test_concurrent_callers_share_one_refresh_token_chain_without_tripping_reuse_detection(
    make_client: Callable[..., pc.PaymentsClient], alice: Caller, short_lived_auth: str
) -> None:
    client = make_client(alice, auth=short_lived_auth, refresh_margin_seconds=SHORT_TTL + 30)
    payment = client.create_payment(100, "EUR")
    failures: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(3):
                client.get_transaction(payment.id)
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_failed_refresh_falls_back_to_a_fresh_login(
    make_client: Callable[..., pc.PaymentsClient],
    alice: Caller,
    short_lived_auth: str,
    db_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(alice, auth=short_lived_auth, refresh_margin_seconds=SHORT_TTL + 30)
    with db_engine.begin() as conn:  # an operator ends every session of the user
        conn.execute(
            text("UPDATE auth.refresh_tokens SET revoked_at = now() WHERE user_id = :u"), {"u": alice.id}
        )
    with caplog.at_level(logging.INFO, logger="payments_client"):
        assert client.create_payment(100, "EUR").user_id == alice.id
    assert "token refresh failed (UNAUTHENTICATED); logging in again" in caplog.messages


def test_a_service_principal_logs_in_again_instead_of_refreshing(
    make_client: Callable[..., pc.PaymentsClient],
    make_service_principal: Callable[[list[str]], Caller],
    short_lived_auth: str,
) -> None:
    client = make_client(
        make_service_principal(["transactions:settle"]),
        service=True,
        auth=short_lived_auth,
        refresh_margin_seconds=SHORT_TTL + 30,
    )
    assert client.tokens.access_token() != client.tokens.access_token()


def test_an_unauthenticated_answer_renews_the_token_and_retries_exactly_once(
    make_client: Callable[..., pc.PaymentsClient],
    alice: Caller,
    start_auth: Callable[..., Any],
    recorder: Recorder,
) -> None:
    # tokens for another audience: the transaction service refuses every one of them
    foreign = start_auth(token_audience="somewhere-else", auth_metrics_port=None)
    client = make_client(alice, auth=f"127.0.0.1:{foreign.port}")
    with pytest.raises(pc.PaymentsError) as caught:
        client.create_payment(100, "EUR")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    attempts = recorder.of("CreateTransaction")
    assert caught.value.attempts == len(attempts) == 2
    assert attempts[0].metadata["authorization"] != attempts[1].metadata["authorization"]
    assert attempts[0].request.idempotency_key == attempts[1].request.idempotency_key
