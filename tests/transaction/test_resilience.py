"""Deadlines bound the database work; a database outage is UNAVAILABLE and heals by itself."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.helpers import Caller, wait_healthy, wait_until, waiting_on_locks
from tests.servers import tx_settings
from tests.transaction.builders import CANCELLED, PENDING, payment_request
from tests.transaction.proxy import CuttableProxy, upstream_of

SERVICE = "payments.transaction.v1.TransactionService"


def test_a_deadline_that_passes_while_waiting_cancels_the_database_work(
    tx_stub: Any, alice: Caller, create: Callable[..., Any], db_engine: Engine
) -> None:
    tx = create(alice)
    with db_engine.connect() as blocker:
        blocker.execute(text("SELECT 1 FROM payments.transactions WHERE id = :i FOR UPDATE"), {"i": tx.id})
        with pytest.raises(grpc.RpcError) as caught:
            request = pb.UpdateTransactionStatusRequest(id=tx.id, status=CANCELLED)
            tx_stub.UpdateTransactionStatus(request, metadata=alice.md, timeout=0.5)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 2
        while waiting_on_locks(db_engine) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_on_locks(db_engine) == 0  # the statement was cancelled, not left waiting
        blocker.rollback()
    after = tx_stub.GetTransaction(pb.GetTransactionRequest(id=tx.id), metadata=alice.md).transaction
    assert after.status == PENDING and after.etag == tx.etag


@pytest.fixture
def proxied_server(database_url: str, auth_address: str) -> Iterator[tuple[CuttableProxy, str]]:
    """A second transaction server whose database connection goes through a cuttable proxy."""
    from transaction_service.app import start

    proxy = CuttableProxy(upstream_of(database_url))
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port, query={})
    settings = tx_settings(
        url.render_as_string(hide_password=False),
        auth_address,
        health_check_interval_seconds=0.2,
        shutdown_grace_seconds=0.5,
        db_pool_timeout_seconds=1.0,
    )
    running = start(settings)
    yield proxy, f"127.0.0.1:{running.port}"
    running.stop()
    proxy.close()


def test_a_database_outage_is_unavailable_and_the_service_recovers_on_its_own(
    proxied_server: tuple[CuttableProxy, str], alice: Caller
) -> None:
    proxy, address = proxied_server
    with grpc.insecure_channel(address) as channel:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=2)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        stub.CreateTransaction(payment_request(), metadata=alice.md, timeout=5)
        proxy.cut()
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateTransaction(payment_request(), metadata=alice.md, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert wait_until(lambda: not serving())
        proxy.restore()
        wait_healthy(address, SERVICE, timeout=10)
        created = stub.CreateTransaction(payment_request(), metadata=alice.md, timeout=5).transaction
        assert created.user_id == alice.id
