"""The transport edge, streams (issue 16: 1, 2): calls that never send a message, and rapid reset.

A thousand calls on 10 raw HTTP/2 connections (`tests/adversarial/transport_h2.py`, h2) send
their headers and never a message, and one connection opens and cancels streams as fast as it
can (`tests/adversarial/transport_frames.py`, from a process of its own), on 127.0.0.1 against
servers with their default limits: each connection is held to its streams, the reset streams are
counted in the metrics, and legitimate callers on real grpc channels are served meanwhile.
"""

from __future__ import annotations

import multiprocessing
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from payments.transaction.v1 import transaction_pb2 as pb
from payments_common.server import RunningServer
from tests.adversarial import transport, transport_frames, transport_h2
from tests.adversarial.tools import record
from tests.adversarial.transport_callers import (
    AUTH,
    HEALTH_CHECK,
    REFLECTION,
    STREAMS_PER_CONNECTION,
    TX,
    auth_calls,
    serve_legitimately,
    tx_calls,
    wait_for,
)
from tests.helpers import Caller
from tests.servers import tx_settings


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
    with transport_h2.silent_calls(running.port, 10, STREAMS_PER_CONNECTION + 50, silent) as connections:
        refused = wait_for(
            lambda: transport_h2.total(connections).resets[transport.REFUSED_STREAM] >= 500, timeout=5
        )
        opened_s = time.monotonic() - started
        served = serve_legitimately(address, legit, 200)
        tally = transport_h2.total(connections)
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
            transport_frames.rapid_reset, running.port, TX + "ListTransactions", list(owner.md), request, 4.0
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
