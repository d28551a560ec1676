"""Bounds of the stream: the watcher limit, resume tokens, drain, one read for many watchers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from payments.transaction.v1 import transaction_pb2 as pb
from payments_common.server import RunningServer
from tests.helpers import Caller
from tests.stream.watching import Watcher, payment, stub_at

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
METHOD = "/payments.transaction.v1.TransactionService/WatchTransactions"


def _handled(code: str) -> float:
    """grpc_server_handled_total of the watch method with `code` (go-grpc-prometheus's spelling)."""
    labels = {
        "grpc_type": "server_stream",
        "grpc_service": "payments.transaction.v1.TransactionService",
        "grpc_method": "WatchTransactions",
        "grpc_code": code,
    }
    return REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0


def test_beyond_the_watcher_limit_a_watch_is_resource_exhausted_with_retry_info(
    start_tx: Callable[..., RunningServer], new_user: Callable[..., Caller]
) -> None:
    channel, stub = stub_at(f"127.0.0.1:{start_tx(watch_max_watchers=2).port}")
    alice = new_user()
    first, second = Watcher(stub, alice.md).live(), Watcher(stub, alice.md).live()
    refused = Watcher(stub, alice.md).ending
    assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_WATCHERS")
    assert refused.retry_delay is not None and refused.retry_delay > 0
    stub.ListTransactions(pb.ListTransactionsRequest(), metadata=alice.md, timeout=5)  # unary calls go on
    first.stop()
    deadline = time.monotonic() + 5
    while True:  # the freed place can be taken again
        third = Watcher(stub, alice.md)
        try:
            third.live(2)
            break
        except AssertionError:
            assert time.monotonic() < deadline, third.error
            time.sleep(0.05)
    for watcher in (second, third):
        watcher.stop()
    channel.close()


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


def test_a_resume_token_that_was_altered_or_issued_to_another_watch_is_invalid_argument(
    stream_stub: Any, new_user: Callable[..., Caller], admin_user: Caller
) -> None:
    alice, bob = new_user(), new_user()
    live = Watcher(stream_stub, alice.md).live()
    payment(stream_stub, alice)
    token = live.wait_for(1)[0].resume_token
    live.stop()
    by_admin = Watcher(stream_stub, admin_user.md, user_id=alice.id).live()
    by_admin.stop()
    for md, resume_token, user_id in [
        (alice.md, _tampered(token), ""),  # one character changed
        (alice.md, token + "A", ""),
        (alice.md, "not a token", ""),
        (alice.md, "A" * 300, ""),
        (bob.md, token, ""),  # another caller
        (admin_user.md, by_admin.start_token, ""),  # the same caller, another filter
        (admin_user.md, by_admin.start_token, bob.id),
    ]:
        ending = Watcher(stream_stub, md, resume_token=resume_token, user_id=user_id).ending
        assert ending.code == INVALID_ARGUMENT, resume_token
        assert set(ending.violations) == {"resume_token"}
    malformed = Watcher(stream_stub, alice.md, user_id="not-a-uuid").ending
    assert (malformed.code, set(malformed.violations)) == (INVALID_ARGUMENT, {"user_id"})


def test_a_resume_token_older_than_the_retention_is_failed_precondition(
    start_tx: Callable[..., RunningServer], new_user: Callable[..., Caller]
) -> None:
    channel, stub = stub_at(f"127.0.0.1:{start_tx(watch_retention_seconds=1).port}")
    alice = new_user()
    watcher = Watcher(stub, alice.md).live()
    watcher.stop()
    Watcher(stub, alice.md, resume_token=watcher.start_token).live().stop()  # still young: accepted
    time.sleep(1.2)
    ending = Watcher(stub, alice.md, resume_token=watcher.start_token).ending
    assert (ending.code, ending.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESUME_TOKEN_EXPIRED")
    channel.close()


def test_a_draining_server_ends_its_streams_unavailable_and_another_one_resumes_them(
    start_tx: Callable[..., RunningServer], stream_stub: Any, new_user: Callable[..., Caller]
) -> None:
    draining = start_tx(shutdown_grace_seconds=5.0)
    channel, stub = stub_at(f"127.0.0.1:{draining.port}")
    alice = new_user()
    watcher = Watcher(stub, alice.md).live()
    first = payment(stream_stub, alice)
    watcher.wait_for(1)
    unavailable_before = _handled("Unavailable")
    stopper = threading.Thread(target=draining.stop)
    started = time.monotonic()
    stopper.start()
    ending = watcher.ending
    stopped_in = time.monotonic() - started
    stopper.join(10)
    assert (ending.code, ending.reason) == (grpc.StatusCode.UNAVAILABLE, "SERVER_DRAINING")
    assert stopped_in < 2  # not after the 5 s grace
    assert _handled("Unavailable") == unavailable_before + 1  # the stream is one call in the metrics
    second = payment(stream_stub, alice)
    resumed = Watcher(stream_stub, alice.md, resume_token=ending.metadata["resume_token"]).live()
    assert [c.transaction.id for c in resumed.wait_for(1)] == [second.id]
    resumed.stop()
    assert first.id != second.id
    channel.close()


def test_one_read_of_the_outbox_serves_a_hundred_watchers(
    start_tx: Callable[..., RunningServer], new_user: Callable[..., Caller]
) -> None:
    address = f"127.0.0.1:{start_tx().port}"
    channel, stub = stub_at(address)
    connections = [stub_at(address, own_connection=True) for _ in range(4)]  # 25 streams each
    alice = new_user()
    watchers = [Watcher(connections[i % 4][1], alice.md) for i in range(100)]
    for watcher in watchers:
        watcher.live()
    reads_before = REGISTRY.get_sample_value("transaction_watch_reads_total") or 0.0
    made = []
    for _ in range(10):
        made.append(payment(stub, alice).id)
        time.sleep(0.05)
    for watcher in watchers:
        assert [c.transaction.id for c in watcher.wait_for(10)] == made
    reads = (REGISTRY.get_sample_value("transaction_watch_reads_total") or 0.0) - reads_before
    for watcher in watchers:
        watcher.stop()
    for other, _ in [(channel, stub), *connections]:
        other.close()
    # one read per wake-up (10 NOTIFYs, a few polls) for all of them, not one per watcher
    assert 1 <= reads <= 40, reads


def test_a_stream_is_one_access_log_line_with_the_messages_it_sent(
    stream_stub: Any, new_user: Callable[..., Caller], caplog: pytest.LogCaptureFixture
) -> None:
    alice = new_user()
    with caplog.at_level("INFO", logger="payments.rpc"):
        watcher = Watcher(stream_stub, alice.md, user_id=alice.id).live()
        payment(stream_stub, alice)
        payment(stream_stub, alice)
        watcher.wait_for(2)
        watcher.stop()
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if getattr(r, "rpc_method", "") == METHOD]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    (line,) = [r for r in caplog.records if getattr(r, "rpc_method", "") == METHOD]
    assert (line.rpc_code, line.messages, line.principal) == ("CANCELLED", 2, alice.id)  # type: ignore[attr-defined]
