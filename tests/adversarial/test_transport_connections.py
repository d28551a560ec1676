"""The transport edge, connections (issue 16: 3, 10, 11): peers that never read, a port in use, metadata.

Raw HTTP/2 clients (`tests/adversarial/transport_h2.py` and `transport_frames.py`, h2) on
127.0.0.1, bounded in count and time, against real servers: connections that never read hold a
bounded share for a bounded time while legitimate callers are served; a second instance on the
port of a running one fails with one clear line; metadata between 8 and 16 KiB is accepted every
time and over 16 KiB refused, while over the limit before the SETTINGS acknowledgement it is still
accepted (a limit of grpc core: the strict xfail turns red once grpc enforces it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

from payments.transaction.v1 import transaction_pb2 as pb
from tests.adversarial import transport, transport_frames, transport_h2
from tests.adversarial.tools import record
from tests.adversarial.transport_callers import (
    HEALTH_CHECK,
    LIVENESS,
    STREAMS_PER_CONNECTION,
    TX,
    liveness,
    serve_legitimately,
    tx_calls,
    wait_for,
)
from tests.helpers import Caller
from tests.servers import ServiceProcess
from tests.transaction.builders import payment_request

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
    stuck = transport_h2.RawConnection(server.port, window=0)
    # one that stops reading at all after its requests, and one that sends none
    silent = transport_h2.RawConnection(server.port, window=0)
    idle = transport_h2.RawConnection(server.port)
    pumps = transport_h2.Pumps([stuck, idle])
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
    return transport_frames.request_before_settings_ack(
        port, HEALTH_CHECK, metadata, LIVENESS.SerializeToString()
    ).statuses


def transport_code(call: Callable[[], Any]) -> str:
    try:
        call()
    except grpc.RpcError as err:
        return str(err.code().name)  # type: ignore[attr-defined]
    return "OK"
