"""Limits: oversized messages are refused before any work; a flood is refused, not queued without bound."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from payments_common.server import RunningServer
from tests.adversarial.tools import (
    cancels_stuck_behind_row_locks,
    code_of,
    every_rpc,
    record,
    snapshot,
    stub_for,
)
from tests.helpers import Caller, wait_until, waiting_on_locks
from tests.servers import tx_settings
from tests.transaction.builders import CANCELLED, payment_request

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
BIG = "x" * (2 * 1024 * 1024)  # twice the default grpc_max_message_bytes


def rows_with_key_prefix(db_engine: Engine, prefix: str) -> int:
    with db_engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM payments.transactions WHERE idempotency_key LIKE :p"),
                {"p": prefix + "%"},
            ).scalar_one()
        )


def test_a_request_over_the_message_limit_is_resource_exhausted_on_every_rpc_and_writes_nothing(
    tx_stub: Any, owner_with_data: tuple[Caller, Any, Any], db_engine: Engine
) -> None:
    owner, pending, payment = owner_with_data
    before = snapshot(db_engine, owner.id)
    oversized = {
        "CreateTransaction": lambda: tx_stub.CreateTransaction(
            payment_request(description=BIG, idempotency_key="oversized-1"), metadata=owner.md, timeout=10
        ),
        "CreateTransaction(refund)": lambda: tx_stub.CreateTransaction(
            payment_request(
                type=pb.TRANSACTION_TYPE_REFUND,
                refund_of=payment.id,
                amount_minor=1,
                metadata={"k": "v" * 400, **{f"k{i}": "v" * 400 for i in range(49)}},
                description=BIG,
                idempotency_key="oversized-2",
            ),
            metadata=owner.md,
            timeout=10,
        ),
        "GetTransaction": lambda: tx_stub.GetTransaction(pb.GetTransactionRequest(id=BIG), metadata=owner.md),
        "ListTransactions": lambda: tx_stub.ListTransactions(
            pb.ListTransactionsRequest(page_token=BIG), metadata=owner.md
        ),
        "UpdateTransactionStatus": lambda: tx_stub.UpdateTransactionStatus(
            pb.UpdateTransactionStatusRequest(id=pending.id, status=CANCELLED, reason=BIG), metadata=owner.md
        ),
        "ListTransactionEvents": lambda: tx_stub.ListTransactionEvents(
            pb.ListTransactionEventsRequest(transaction_id=BIG), metadata=owner.md
        ),
    }
    codes = {name: code_of(call) for name, call in oversized.items()}
    # oversized metadata headers are refused by the transport the same way
    rpcs = every_rpc(pending.id, payment.id)
    header_codes = {
        name: code_of(lambda c=call: c(tx_stub, (*owner.md, ("x-padding", "p" * 20_000))))
        for name, call in rpcs.items()
    }
    assert codes == dict.fromkeys(oversized, EXHAUSTED)
    assert header_codes == dict.fromkeys(rpcs, EXHAUSTED)
    assert snapshot(db_engine, owner.id) == before
    assert rows_with_key_prefix(db_engine, "oversized-") == 0
    record(
        "limits: messages and headers over the limit -> RESOURCE_EXHAUSTED, nothing written",
        trials=2,
        requests=len(codes) + len(header_codes),
        failures=0,
    )


@pytest.fixture
def small_server(database_url: str, auth_address: str) -> Iterator[str]:
    """A transaction server with a 16 KiB message limit, as an operator may configure it."""
    from transaction_service.app import start

    running: RunningServer = start(tx_settings(database_url, auth_address, grpc_max_message_bytes=16 * 1024))
    yield f"127.0.0.1:{running.port}"
    running.stop()


def test_the_configured_limit_refuses_larger_creates_and_cuts_listing_pages_to_fit(
    small_server: str, new_user: Callable[..., Caller], db_engine: Engine
) -> None:
    owner = new_user()
    # ~5 KB each: valid by every field rule, and three of them are more than one 16 KiB message
    rich = {f"key-{i:02d}": "v" * 100 for i in range(45)}
    with grpc.insecure_channel(small_server) as channel:
        stub = stub_for(channel)
        created = [
            stub.CreateTransaction(
                payment_request(metadata=rich, idempotency_key=f"small-{i}-{owner.id}"), metadata=owner.md
            ).transaction
            for i in range(7)
        ]
        huge = {f"key-{i:02d}": "v" * 500 for i in range(45)}  # ~23 KB: valid fields, too large a message
        assert (
            code_of(
                lambda: stub.CreateTransaction(
                    payment_request(metadata=huge, idempotency_key="too-big"), metadata=owner.md
                )
            )
            == EXHAUSTED
        )
        seen: list[str] = []
        token, pages = "", 0
        while True:  # default page size 50, yet each page must fit in 16 KiB
            page = stub.ListTransactions(pb.ListTransactionsRequest(page_token=token), metadata=owner.md)
            assert page.ByteSize() <= 16 * 1024
            assert page.transactions, "a page must make progress"
            seen += [t.id for t in page.transactions]
            pages += 1
            token = page.next_page_token
            if not token:
                break
    assert sorted(seen) == sorted(t.id for t in created) and len(seen) == len(set(seen))
    assert pages > 1
    with db_engine.connect() as conn:
        assert conn.execute(
            text("SELECT count(*) FROM payments.transactions WHERE user_id = :u"), {"u": owner.id}
        ).scalar_one() == len(created)
    record(
        "limits: configured 16 KiB limit refuses a larger create; pages shrink to fit",
        trials=1,
        requests=len(created) + 1 + pages,
        pages=pages,
        failures=0,
    )


def test_a_page_of_maximal_transactions_fits_the_default_limit_and_paging_reaches_every_row(
    tx_stub: Any, new_user: Callable[..., Caller]
) -> None:
    owner = new_user()
    # the largest transaction the field rules allow: ~110 KB in 4-byte characters
    metadata = {f"{i:02d}" + "\U0001f4b0" * 38: "\U0001f4b0" * 500 for i in range(50)}
    ids = {
        tx_stub.CreateTransaction(
            payment_request(metadata=metadata, description="\U0001f4b0" * 500), metadata=owner.md
        ).transaction.id
        for _ in range(12)
    }
    for page_size in (0, 500):
        seen: list[str] = []
        token = ""
        while True:
            page = tx_stub.ListTransactions(
                pb.ListTransactionsRequest(page_size=page_size, page_token=token), metadata=owner.md
            )
            seen += [t.id for t in page.transactions]
            token = page.next_page_token
            if not token:
                break
        assert sorted(seen) == sorted(ids)
    record("limits: twelve maximal transactions listed within 1 MiB pages", trials=2, requests=14, failures=0)


def test_a_flood_beyond_the_concurrency_limit_is_refused_at_once_while_admitted_calls_finish(
    database_url: str,
    auth_address: str,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    db_engine: Engine,
) -> None:
    from transaction_service.app import start

    running = start(
        tx_settings(
            database_url, auth_address, grpc_max_concurrent_rpcs=4, grpc_max_workers=8, db_pool_size=6
        )
    )
    owner = new_user()
    held = [create(owner) for _ in range(4)]
    timings: list[float] = []
    codes: Counter[str] = Counter()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, db_engine.connect() as blocker:
            stub = stub_for(channel)
            with ThreadPoolExecutor(max_workers=48) as pool:
                admitted = cancels_stuck_behind_row_locks(blocker, pool, stub, owner, held, 20)
                # the four admitted calls wait on their row locks
                wait_until(lambda: waiting_on_locks(db_engine) >= 4)

                def flood(i: int) -> grpc.StatusCode:
                    started = time.monotonic()
                    code = code_of(
                        lambda: stub.CreateTransaction(
                            payment_request(idempotency_key=f"flood-{i}-{owner.id}"),
                            metadata=owner.md,
                            timeout=20,
                        )
                    )
                    timings.append(time.monotonic() - started)
                    return code

                for code in pool.map(flood, range(40)):
                    codes[code.name] += 1
                blocker.rollback()
                admitted_codes = [f.result() for f in admitted]
            after = code_of(lambda: stub.ListTransactions(pb.ListTransactionsRequest(), metadata=owner.md))
    finally:
        running.stop()
    written = rows_with_key_prefix(db_engine, "flood-")
    record(
        "limits: flood of 40 calls over a 4-call limit",
        trials=1,
        requests=40 + len(admitted_codes) + 1,
        codes=dict(codes),
        slowest_refusal_s=round(max(timings), 3),
        failures=0,
    )
    assert codes == {"RESOURCE_EXHAUSTED": 40}
    assert max(timings) < 2.0  # refused at once, not queued behind the stuck calls
    assert written == 0
    assert admitted_codes == [grpc.StatusCode.OK] * 4
    assert after == grpc.StatusCode.OK
