"""Calls spread over every replica: client-side round robin, and connections that age out.

A headless Service makes "dns:///transactions:50052" resolve to every ready pod; the client then
balances round robin. Servers close connections after GRPC_MAX_CONNECTION_AGE_SECONDS, so that
clients resolve again and replicas added by the autoscaler get calls too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_client.channel import ROUND_ROBIN, channel_options, open_channel

WHO = "/test.Replica/Who"


@pytest.fixture
def replicas() -> Iterator[list[int]]:
    """Two servers on their own ports, each answering a call with its own name."""
    servers, ports = [], []
    for name in (b"a", b"b"):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        answer = grpc.unary_unary_rpc_method_handler(lambda _request, _context, name=name: name)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Replica", {"Who": answer})]
        )
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        servers.append(server)
    yield ports
    for server in servers:
        server.stop(0)


def _who(channel: grpc.Channel, calls: int = 20) -> set[bytes]:
    who = channel.unary_unary(WHO)
    return {who(b"", timeout=5) for _ in range(calls)}


def test_a_dns_address_gets_round_robin_and_a_plain_one_does_not():
    assert ROUND_ROBIN in channel_options("dns:///transactions:50052")
    assert ROUND_ROBIN not in channel_options("transactions:50052")
    assert json.loads(ROUND_ROBIN[1]) == {"loadBalancingConfig": [{"round_robin": {}}]}
    own = ("grpc.lb_policy_name", "pick_first")
    assert channel_options("dns:///transactions:50052", [own])[-1] == own
    assert ROUND_ROBIN not in channel_options("dns:///transactions:50052", [own])  # the caller's wins


def test_round_robin_spreads_calls_over_every_address(replicas):
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in replicas)  # what DNS gives a headless name
    with open_channel(target, round_robin=True) as channel:
        assert _who(channel) == {b"a", b"b"}
    with open_channel(target, round_robin=False) as channel:
        assert len(_who(channel)) == 1  # pick_first: one connection, one replica


def test_a_dns_address_is_served_with_the_round_robin_config(replicas):
    with open_channel(f"dns:///localhost:{replicas[0]}") as channel:  # the service config is valid
        assert _who(channel, calls=3) == {b"a"}


def test_the_server_closes_a_connection_after_its_age_and_the_client_reconnects(start_auth):
    server = start_auth(grpc_max_connection_age_seconds=0.5, shutdown_grace_seconds=0.5)
    states: list[grpc.ChannelConnectivity] = []
    seen = threading.Event()

    def record(state: grpc.ChannelConnectivity) -> None:
        states.append(state)
        if grpc.ChannelConnectivity.READY in states and state != grpc.ChannelConnectivity.READY:
            seen.set()

    with open_channel(f"127.0.0.1:{server.port}") as channel:
        channel.subscribe(record, try_to_connect=True)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="liveness")
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        assert seen.wait(10), f"the connection was never closed: {states}"
        time.sleep(0.1)
        assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        channel.unsubscribe(record)
