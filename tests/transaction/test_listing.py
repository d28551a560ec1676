"""Listing: newest first, keyset pages joined by opaque tokens bound to caller and filter."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine, text

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller, details_of
from tests.transaction.builders import CANCELLED, COMPLETED, PAYMENT, PENDING, REFUND
from transaction_service.domain import Status, TxType
from transaction_service.pagination import Cursor, ListFilter
from transaction_service.repository import Account, page_query


def list_all(tx_stub: Any, caller: Caller, page_size: int, **filters: Any) -> list[list[str]]:
    """Every page of a listing, as lists of ids."""
    pages, token = [], ""
    while True:
        request = pb.ListTransactionsRequest(page_size=page_size, page_token=token, **filters)
        reply = tx_stub.ListTransactions(request, metadata=caller.md)
        pages.append([t.id for t in reply.transactions])
        token = reply.next_page_token
        if not token:
            return pages


def bulk_insert(db_engine: Engine, user_id: str, count: int) -> None:
    """Rows written directly, with their creation events, as an operator would backfill them (quick)."""
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "WITH created AS (INSERT INTO payments.transactions (user_id, type, amount_minor, currency,"
                " idempotency_key, request_fingerprint, created_at) SELECT :u, 'PAYMENT', 100, 'EUR',"
                " 'bulk-' || i, sha256(i::text::bytea), now() - i * interval '1 second'"
                " FROM generate_series(1, :n) AS i RETURNING id)"
                " INSERT INTO payments.transaction_events (transaction_id, old_status, new_status, actor)"
                " SELECT id, NULL, 'PENDING', 'backfill' FROM created"  # backfills keep the audit trail whole
            ),
            {"u": user_id, "n": count},
        )


def test_pages_come_newest_first_without_gaps_or_duplicates(
    tx_stub: Any, alice: Caller, create: Callable[..., Any]
) -> None:
    created = [create(alice).id for _ in range(11)]
    pages = list_all(tx_stub, alice, page_size=4)
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [i for page in pages for i in page] == created[::-1]


def test_page_size_zero_means_fifty_and_large_sizes_are_capped_at_five_hundred(
    tx_stub: Any, alice: Caller, db_engine: Engine
) -> None:
    bulk_insert(db_engine, alice.id, 501)
    default = tx_stub.ListTransactions(pb.ListTransactionsRequest(), metadata=alice.md)
    assert len(default.transactions) == 50 and default.next_page_token
    capped = tx_stub.ListTransactions(pb.ListTransactionsRequest(page_size=10_000), metadata=alice.md)
    assert len(capped.transactions) == 500 and capped.next_page_token


def test_filters_select_by_status_type_currency_and_creation_time(
    tx_stub: Any, alice: Caller, create: Callable[..., Any], settle: Callable[..., Any]
) -> None:
    usd = create(alice, currency="USD")
    paid = settle(create(alice, amount_minor=500).id)
    refund = create(alice, type=REFUND, refund_of=paid.id, amount_minor=100)
    cancelled = tx_stub.UpdateTransactionStatus(
        pb.UpdateTransactionStatusRequest(id=create(alice).id, status=CANCELLED), metadata=alice.md
    ).transaction

    def ids(**filters: Any) -> list[str]:
        return [i for page in list_all(tx_stub, alice, 50, **filters) for i in page]

    assert ids(status=COMPLETED) == [paid.id]
    assert ids(status=CANCELLED) == [cancelled.id]
    assert ids(type=REFUND) == [refund.id]
    assert ids(currency="USD") == [usd.id]
    assert set(ids(status=PENDING, type=PAYMENT)) == {usd.id}
    start = Timestamp(seconds=paid.created_at.seconds, nanos=paid.created_at.nanos)
    end = Timestamp(seconds=cancelled.created_at.seconds, nanos=cancelled.created_at.nanos)
    assert ids(created_from=start, created_to=end) == [refund.id, paid.id]


def test_a_tampered_or_borrowed_page_token_is_invalid_argument(
    tx_stub: Any, alice: Caller, bob: Caller, create: Callable[..., Any]
) -> None:
    for _ in range(3):
        create(alice)
    token = tx_stub.ListTransactions(
        pb.ListTransactionsRequest(page_size=1), metadata=alice.md
    ).next_page_token
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    attempts = [
        (alice, pb.ListTransactionsRequest(page_size=1, page_token=tampered)),
        (alice, pb.ListTransactionsRequest(page_size=1, page_token=token, status=PENDING)),
        (bob, pb.ListTransactionsRequest(page_size=1, page_token=token)),
        (alice, pb.ListTransactionsRequest(page_size=1, page_token="garbage!")),
    ]
    for caller, request in attempts:
        with pytest.raises(grpc.RpcError) as caught:
            tx_stub.ListTransactions(request, metadata=caller.md)
        details = details_of(caught.value)
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in details.violations
    ok = tx_stub.ListTransactions(
        pb.ListTransactionsRequest(page_size=5, page_token=token), metadata=alice.md
    )
    assert len(ok.transactions) == 2


def test_paging_while_inserting_skips_nothing_older_and_repeats_nothing(
    tx_stub: Any, alice: Caller, create: Callable[..., Any]
) -> None:
    before = {create(alice).id for _ in range(30)}
    stop = threading.Event()
    inserted: list[str] = []

    def keep_inserting() -> None:
        while not stop.is_set():
            inserted.append(create(alice).id)

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        seen = [i for page in list_all(tx_stub, alice, page_size=3) for i in page]
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen))
    assert before <= set(seen)
    assert inserted  # the writer really ran during the listing


@pytest.mark.parametrize(
    "listing",
    [
        ListFilter(uuid.uuid4()),
        ListFilter(uuid.uuid4(), status=Status.PENDING),
        ListFilter(uuid.uuid4(), type=TxType.REFUND),
    ],
)
def test_a_page_is_read_from_an_index_without_sorting_the_history(
    db_engine: Engine, listing: ListFilter
) -> None:
    after = Cursor(datetime.now(UTC) - timedelta(days=1), uuid.uuid4())
    sql, params = page_query(listing, after, 51, Account("user", listing.owner))
    with db_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_sort = off"))
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}", params))
    assert "Index" in plan and "Sort" not in plan, plan
