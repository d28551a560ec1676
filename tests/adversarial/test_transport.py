"""The transport edge (issue 16: 1, 2, 3, 10, 11): hostile HTTP/2 peers below gRPC.

Each attack is a raw HTTP/2 client (`tests/adversarial/transport.py`, h2) on 127.0.0.1, bounded
in count and time, against real servers with their default limits; legitimate callers use real
grpc channels meanwhile and must be served.
"""

from __future__ import annotations

import itertools
import multiprocessing
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common.server import RunningServer
from tests.adversarial import transport
from tests.adversarial.tools import record
from tests.helpers import Caller
from tests.servers import ServiceProcess, tx_settings
from tests.transaction.builders import payment_request

TX = "/payments.transaction.v1.TransactionService/"
AUTH = "/payments.auth.v1.AuthService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
LIVENESS = health_pb2.HealthCheckRequest(service="liveness")
STREAMS_PER_CONNECTION = 100  # the default GRPC_MAX_CONCURRENT_STREAMS


@dataclass
class Served:
    """What legitimate callers got: codes per kind of call, and latencies."""

    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    @property
    def ok_share(self) -> float:
        return sum(n for key, n in self.codes.items() if key.endswith(":OK")) / max(self.calls, 1)

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000, 1)

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "ok_pct": round(100 * self.ok_share, 2),
            "p50_ms": self.ms(0.5),
            "p99_ms": self.ms(0.99),
            "codes": dict(self.codes),
        }


def serve_legitimately(address: str, calls: dict[str, Callable[[grpc.Channel], Any]], n: int) -> Served:
    """`n` calls from 4 threads over one fresh channel, cycling through `calls` (name -> call)."""
    served = Served()
    names = list(calls)
    with grpc.insecure_channel(address) as channel:

        def one(i: int) -> None:
            name = names[i % len(names)]
            started = time.monotonic()
            try:
                calls[name](channel)
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name  # type: ignore[attr-defined]
            served.latencies.append(time.monotonic() - started)
            served.codes[f"{name}:{code}"] += 1

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, range(n)))
    return served


def liveness(channel: grpc.Channel) -> Any:
    return health_pb2_grpc.HealthStub(channel).Check(LIVENESS, timeout=5)


def tx_calls(owner: Caller) -> dict[str, Callable[[grpc.Channel], Any]]:
    def listing(channel: grpc.Channel) -> Any:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        return stub.ListTransactions(pb.ListTransactionsRequest(page_size=5), metadata=owner.md, timeout=5)

    return {"ListTransactions": listing, "liveness": liveness}


def auth_calls(users: list[Caller]) -> dict[str, Callable[[grpc.Channel], Any]]:
    """Logins (each of `users` in turn: concurrent logins of one account may contend), JWKS, liveness."""
    turn = itertools.count()

    def login(channel: grpc.Channel) -> Any:
        user = users[next(turn) % len(users)]
        credentials = auth_pb2.PasswordCredentials(email=user.email, password=user.password)
        request = auth_pb2.LoginRequest(password=credentials)
        return auth_pb2_grpc.AuthServiceStub(channel).Login(request, timeout=5)

    def jwks(channel: grpc.Channel) -> Any:
        return auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=5)

    return {"Login": login, "GetJwks": jwks, "liveness": liveness}


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def scrape(port: int | None) -> dict[str, float]:
    """The unlabelled samples of a /metrics endpoint."""
    assert port is not None
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^([a-z_]+) ([0-9.e+-]+)$", body, re.M)}


@pytest.fixture
def dedicated_server(
    database_url: str, auth_address: str, start_auth: Callable[..., RunningServer]
) -> Iterator[Callable[[str], RunningServer]]:
    """Start a server of either service with the default transport limits (stopped afterwards)."""
    from transaction_service.app import start

    started: list[RunningServer] = []

    def _start(service: str) -> RunningServer:
        if service == "auth":
            return start_auth()  # stopped by the session fixture
        started.append(start(tx_settings(database_url, auth_address)))
        return started[-1]

    yield _start
    for running in started:
        running.stop()


# -- 1: calls that send headers and never a message ---------------------------------------------


@pytest.mark.parametrize("service", ["auth", "transaction"])
def test_a_thousand_calls_that_never_send_a_message_leave_the_service_serving(
    service: str, dedicated_server: Callable[[str], RunningServer], new_user: Callable[..., Caller]
) -> None:
    running = dedicated_server(service)
    address = f"127.0.0.1:{running.port}"
    owner = new_user()
    md = list(owner.md)
    silent: list[tuple[str, transport.Metadata]]
    if service == "auth":  # anonymous logins, idle reflection streams, health checks
        silent = [(AUTH + "Login", []), (REFLECTION, []), (HEALTH_CHECK, [])]
        legit = auth_calls([owner, *(new_user() for _ in range(7))])
    else:  # authenticated reads, health checks
        silent = [(TX + "GetTransaction", md), (TX + "ListTransactions", md), (HEALTH_CHECK, [])]
        legit = tx_calls(owner)
    attempted = 10 * (STREAMS_PER_CONNECTION + 50)
    started = time.monotonic()
    with transport.silent_calls(running.port, 10, STREAMS_PER_CONNECTION + 50, silent) as connections:
        refused = wait_for(
            lambda: transport.total(connections).resets[transport.REFUSED_STREAM] >= 500, timeout=5
        )
        opened_s = time.monotonic() - started
        served = serve_legitimately(address, legit, 200)
        tally = transport.total(connections)
        live = sum(conn.tally.closed_after is None for conn in connections)
    after = serve_legitimately(address, legit, 40)
    held = attempted - tally.resets[transport.REFUSED_STREAM] - sum(tally.statuses.values())
    record(
        f"transport 1: 1,000 calls without a message, {service} service",
        trials=1,
        requests=attempted + served.calls + after.calls,
        attempted=attempted,
        held_open=held,
        refused_per_connection=tally.resets[transport.REFUSED_STREAM] // 10,
        opened_s=round(opened_s, 2),
        during=served.figures(),
        after=after.figures(),
        failures=served.calls - round(served.ok_share * served.calls),
    )
    assert refused, f"each connection over {STREAMS_PER_CONNECTION} streams must be refused: {tally}"
    assert held == 1000 and live == 10, "the 1,000 silent calls stay open, none answered"
    assert dict(tally.resets) == {transport.REFUSED_STREAM: 500}
    assert served.ok_share >= 0.99, served.figures()
    assert all(key.endswith(":OK") for key in served.codes if key.startswith("liveness")), served.codes
    assert after.ok_share == 1.0, after.figures()


# -- 2: HTTP/2 rapid reset ----------------------------------------------------------------------


def test_a_rapid_reset_connection_is_bounded_to_its_streams_and_counted_in_metrics(
    dedicated_server: Callable[[str], RunningServer], new_user: Callable[..., Caller]
) -> None:
    running = dedicated_server("transaction")
    address = f"127.0.0.1:{running.port}"
    owner = new_user()
    calls = tx_calls(owner)
    baseline = serve_legitimately(address, calls, 200)
    before = scrape(running.metrics_port)
    request = pb.ListTransactionsRequest(page_size=5).SerializeToString()
    # the attacker gets a process (and a GIL) of its own, as a remote one would
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()
        attack = pool.submit(
            transport.rapid_reset, running.port, TX + "ListTransactions", list(owner.md), request, 4.0
        )
        time.sleep(0.5)
        served = serve_legitimately(address, calls, 400)
        during = scrape(running.metrics_port)
        run = attack.result(timeout=30)
    after = scrape(running.metrics_port)
    failed = after["grpc_transport_calls_failed_total"] - before["grpc_transport_calls_failed_total"]
    record(
        "transport 2: rapid reset on one connection",
        trials=1,
        requests=run.streams + baseline.calls + served.calls,
        attack_streams=run.streams,
        attack_rate_per_s=round(run.rate),
        attack_seconds=round(run.seconds, 2),
        refused=run.tally.resets.get(transport.REFUSED_STREAM, 0),
        enhance_your_calm=run.tally.resets.get(transport.ENHANCE_YOUR_CALM, 0),
        goaway=run.tally.goaway,
        metric_calls_failed=failed,
        metric_worst_connection=during["grpc_transport_connection_calls_failed_max"],
        baseline=baseline.figures(),
        during=served.figures(),
        failures=served.calls - round(served.ok_share * served.calls),
    )
    assert run.rate > 5000, f"the attack must be real: {run.rate:.0f} streams/s"
    assert run.tally.resets[transport.REFUSED_STREAM] > run.streams / 2, "streams over the limit refused"
    assert served.ok_share >= 0.99, served.figures()
    assert served.ms(0.99) < 2000, served.figures()
    # counted: the attacker's reset streams, most of them on its one connection
    assert failed >= 1000
    assert during["grpc_transport_connection_calls_failed_max"] >= 1000


# -- 3: clients that never read -----------------------------------------------------------------


def rss_mib(process: ServiceProcess) -> float:
    assert process.proc is not None
    with open(f"/proc/{process.proc.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_clients_that_never_read_hold_a_bounded_share_for_a_bounded_time(
    service_process: Callable[..., ServiceProcess], tx_stub: Any, new_user: Callable[..., Caller]
) -> None:
    # a short idle limit, so that the test sees it act (default 60 s)
    server = service_process(GRPC_MAX_CONNECTION_IDLE_SECONDS="2")
    server.start()
    owner = new_user()
    largest = {f"{i:02d}" + "\U0001f4b0" * 38: "\U0001f4b0" * 500 for i in range(50)}  # ~110 KB each
    for _ in range(3):
        tx_stub.CreateTransaction(
            payment_request(metadata=largest, description="\U0001f4b0" * 500), metadata=owner.md
        )
    request = pb.ListTransactionsRequest(page_size=500).SerializeToString()
    serve_legitimately(server.address, tx_calls(owner), 8)  # warm up before measuring
    baseline = rss_mib(server)
    # one connection, flow-control window 0, 300 listings of the largest pages; it answers PINGs
    stuck = transport.RawConnection(server.port, window=0)
    # one that stops reading at all after its requests, and one that sends none
    silent = transport.RawConnection(server.port, window=0)
    idle = transport.RawConnection(server.port)
    pumps = transport.Pumps([stuck, idle])
    try:
        for _ in range(300):
            stuck.open_stream(TX + "ListTransactions", list(owner.md), request)
        for _ in range(10):
            silent.open_stream(TX + "ListTransactions", list(owner.md), request)
        refused = wait_for(lambda: stuck.tally.resets[transport.REFUSED_STREAM] >= 200, timeout=5)
        time.sleep(0.5)  # the accepted listings are answered into the closed window
        held = rss_mib(server)
        served = serve_legitimately(server.address, tx_calls(owner), 100)
        # answers waiting only for the client's window do not count as calls: the connection
        # is idle, and closed with them
        stuck_closed = wait_for(lambda: stuck.tally.closed_after is not None, timeout=10)
        silent_closed = wait_for(lambda: not silent.pump(0.1), timeout=5)
        idle_closed = wait_for(
            lambda: idle.tally.goaway is not None or idle.tally.closed_after is not None, 5
        )
    finally:
        pumps.stop()
        for conn in (stuck, silent, idle):
            conn.close()
    record(
        "transport 3: clients that never read",
        trials=1,
        requests=310 + served.calls,
        rss_baseline_mib=round(baseline),
        rss_held_mib=round(held),
        rss_after_mib=round(rss_mib(server)),
        held_per_stream_mib=round((held - baseline) / STREAMS_PER_CONNECTION, 2),
        refused=stuck.tally.resets[transport.REFUSED_STREAM],
        stuck_closed_after_s=stuck.tally.closed_after and round(stuck.tally.closed_after, 1),
        silent_closed_after_s=silent.tally.closed_after and round(silent.tally.closed_after, 1),
        idle_goaway=idle.tally.goaway,
        during=served.figures(),
        failures=served.calls - round(served.ok_share * served.calls),
    )
    assert refused and stuck.tally.resets == Counter({transport.REFUSED_STREAM: 200}), stuck.tally
    # 100 pages of <= 256 KiB stuck in the window, about 3 times their bytes each; before this
    # limit: 256 pages of 1 MiB (GRPC_MAX_CONCURRENT_RPCS) and +800 MiB, every slot taken
    assert held - baseline < 150, f"{held - baseline:.0f} MiB held by one never-reading connection"
    assert served.ok_share >= 0.99, served.figures()
    assert stuck_closed, "answers stuck in a zero window must end with the idle limit"
    assert silent_closed, "a peer that stopped reading must be closed with them"
    assert idle_closed, "a connection without calls must be closed after GRPC_MAX_CONNECTION_IDLE_SECONDS"


# -- 10: a second instance on a port in use -----------------------------------------------------


def test_a_second_instance_on_a_port_in_use_fails_start_up_with_one_clear_line(
    service_process: Callable[..., ServiceProcess],
) -> None:
    first = service_process()
    first.start()
    second = service_process()
    second.port = first.port
    second.start()  # returns at once: the first instance answers the health check
    code = second.wait(timeout=30)
    assert second.proc is not None and second.proc.stderr is not None
    lines = [line for line in second.proc.stderr.read().splitlines() if line.strip()]
    record("transport 10: second instance on a port in use", trials=1, requests=1, exit=code, failures=0)
    assert code != 0
    # grpc core logs its own line first; ours is the last, and there is no traceback
    assert lines[-1] == f"start-up error: cannot listen on 127.0.0.1:{first.port} (port in use?)"
    assert not any("Traceback" in line for line in lines), lines
    assert first.proc is not None and first.proc.poll() is None


# -- 11: metadata before the SETTINGS acknowledgement -------------------------------------------


def test_metadata_between_8_and_16_kib_is_accepted_every_time_and_over_16_kib_refused(
    tx_address: str,
) -> None:
    port = int(tx_address.rsplit(":", 1)[1])
    with grpc.insecure_channel(tx_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        under = Counter(
            transport_code(lambda: health.Check(LIVENESS, metadata=[("x-padding", "p" * 12_000)], timeout=5))
            for _ in range(20)
        )
        over = transport_code(lambda: health.Check(LIVENESS, metadata=[("x-padding", "p" * 20_000)]))
    early = Counter(str(sorted(unacknowledged(port, 20_000))) for _ in range(5))
    huge = unacknowledged(port, 4 << 20)
    with grpc.insecure_channel(tx_address) as channel:
        after = transport_code(lambda: liveness(channel))
    record(
        "transport 11: metadata limit, acknowledged and before the acknowledgement",
        trials=3,
        requests=27,
        under_16k=dict(under),
        over_16k_acked=over,
        over_16k_before_ack=dict(early),
        four_mib_before_ack=dict(huge),
        failures=0,
    )
    # soft limit = hard limit: no random refusals between the default 8 KiB soft and 16 KiB
    assert under == Counter({"OK": 20})
    assert over == "RESOURCE_EXHAUSTED"
    assert after == "OK", "4 MiB of headers before the acknowledgement leave the server serving"


@pytest.mark.xfail(
    strict=True,
    reason="grpc core checks the hard metadata limit against the client-acknowledged SETTINGS "
    "(16 MiB until the ACK); tests/README.md, transport, 11",
)
def test_metadata_over_the_limit_sent_before_the_settings_ack_is_refused(tx_address: str) -> None:
    port = int(tx_address.rsplit(":", 1)[1])
    statuses = [unacknowledged(port, 65_536) for _ in range(5)]
    assert all("0" not in s for s in statuses), statuses


def unacknowledged(port: int, padding: int) -> Counter[str]:
    """grpc-status of a liveness check with `padding` bytes of metadata, sent before the SETTINGS ACK."""
    metadata = [("x-padding", "p" * padding)]
    return transport.request_before_settings_ack(
        port, HEALTH_CHECK, metadata, LIVENESS.SerializeToString()
    ).statuses


def transport_code(call: Callable[[], Any]) -> str:
    try:
        call()
    except grpc.RpcError as err:
        return str(err.code().name)  # type: ignore[attr-defined]
    return "OK"
