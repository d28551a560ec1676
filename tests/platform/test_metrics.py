"""Prometheus metrics on a separate HTTP port, named and labelled as go-grpc-prometheus does."""

from __future__ import annotations

import urllib.request
from collections import Counter as Tally

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from tests.helpers import wait_until
from tests.servers import tx_settings
from tests.stream.watching import Watcher, payment, stub_at

AUTH = "payments.auth.v1.AuthService"
TX = "payments.transaction.v1.TransactionService"
METHOD_LABELS = {"grpc_type", "grpc_service", "grpc_method"}
# go-grpc-prometheus: the help texts, and client_golang's default buckets (prometheus.DefBuckets)
GO_HELP = {
    "grpc_server_started": "Total number of RPCs started on the server.",
    "grpc_server_handled": "Total number of RPCs completed on the server, regardless of success or failure.",
    "grpc_server_msg_received": "Total number of RPC stream messages received on the server.",
    "grpc_server_msg_sent": "Total number of gRPC stream messages sent by the server.",
    "grpc_server_handling_seconds": "Histogram of response latency (seconds) of gRPC that had been"
    " application-level handled by the server.",
}
GO_BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]


class Scrape:
    """One GET /metrics, parsed by prometheus_client's own text-format parser."""

    def __init__(self, port: int):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            self.text = reply.read().decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.values = Tally(
            {
                (s.name, frozenset(s.labels.items())): s.value
                for f in self.families.values()
                for s in f.samples
            }
        )

    def value(self, sample: str, **labels: str) -> float:
        return self.values[(sample, frozenset(labels.items()))]


def _method(grpc_type: str, service: str, method: str) -> dict[str, str]:
    return {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method}


def test_unary_calls_are_counted_by_type_service_method_and_go_code_name(start_auth, new_user):
    server = start_auth()
    assert server.metrics_port and server.metrics_port != server.port
    caller = new_user()
    before = Scrape(server.metrics_port)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(2):
            stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=caller.md)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetCurrentUser(auth_pb2.GetCurrentUserRequest(), metadata=(("authorization", "Bearer x"),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError):
            stub.Login(
                auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=caller.email, password="x"))
            )
        with pytest.raises(grpc.RpcError) as invalid:
            stub.Register(auth_pb2.RegisterRequest(email="not an email", password="x"))
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = Scrape(server.metrics_port)

    def delta(sample: str, **labels: str) -> float:
        return after.value(sample, **labels) - before.value(sample, **labels)

    me, register = _method("unary", AUTH, "GetCurrentUser"), _method("unary", AUTH, "Register")
    assert delta("grpc_server_started_total", **me) == 3
    assert delta("grpc_server_handled_total", **me, grpc_code="OK") == 2
    assert delta("grpc_server_handled_total", **me, grpc_code="Unauthenticated") == 1
    assert delta("grpc_server_handled_total", **register, grpc_code="InvalidArgument") == 1
    login = _method("unary", AUTH, "Login")
    assert delta("grpc_server_handled_total", **login, grpc_code="Unauthenticated") == 1
    assert delta("grpc_server_msg_received_total", **me) == 3
    assert delta("grpc_server_msg_sent_total", **me) == 2  # a failed unary call sends no message
    assert delta("grpc_server_msg_sent_total", **register) == 0
    assert delta("grpc_server_handling_seconds_count", **me) == 3
    assert delta("grpc_server_handling_seconds_sum", **me) > 0

    for family, help_text in GO_HELP.items():
        assert after.families[family].documentation == help_text
    kind = {name: after.families[name].type for name in GO_HELP}
    assert kind == {**dict.fromkeys(GO_HELP, "counter"), "grpc_server_handling_seconds": "histogram"}
    handled = [s for s in after.families["grpc_server_handled"].samples if s.name.endswith("_total")]
    assert handled and all(set(s.labels) == {*METHOD_LABELS, "grpc_code"} for s in handled)
    assert not any("/" in s.labels["grpc_method"] for s in handled)  # the method's name, not its path
    buckets = [
        s.labels["le"]
        for s in after.families["grpc_server_handling_seconds"].samples
        if s.name.endswith("_bucket") and s.labels.items() >= me.items()
    ]
    assert buckets == GO_BUCKETS
    assert "grpc_server_in_flight" not in after.text  # started minus handled says as much
    assert "db_pool_connections_in_use" in after.text and "db_pool_size" in after.text
    assert 'auth_login_failures_total{kind="user"}' in after.text
    assert "auth_tokens_issued_total" in after.text


def test_a_watch_counts_each_message_as_it_is_sent_and_its_end_once(database_url, auth_address, new_user):
    from transaction_service.app import start

    server = start(tx_settings(database_url, auth_address, watch_poll_interval_seconds=0.2))
    watch = _method("server_stream", TX, "WatchTransactions")
    channel, stub = stub_at(f"127.0.0.1:{server.port}")
    try:
        assert server.metrics_port
        alice = new_user()
        before = Scrape(server.metrics_port)
        watcher = Watcher(stub, alice.md).live()
        for amount in (100, 200):
            payment(stub, alice, amount)
        assert len(watcher.wait_for(2)) == 2

        def sent() -> float:
            scrape = Scrape(server.metrics_port)
            return scrape.value("grpc_server_msg_sent_total", **watch) - before.value(
                "grpc_server_msg_sent_total", **watch
            )

        assert wait_until(lambda: sent() == 2), f"sent while open: {sent()}"  # counted before the end
        open_ = Scrape(server.metrics_port)
        assert (
            open_.value("grpc_server_started_total", **watch)
            - before.value("grpc_server_started_total", **watch)
            == 1
        )
        assert (
            open_.value("grpc_server_msg_received_total", **watch)
            - before.value("grpc_server_msg_received_total", **watch)
            == 1
        )
        handled = ("grpc_server_handled_total", frozenset({**watch, "grpc_code": "Canceled"}.items()))
        assert open_.values[handled] == before.values[handled]  # not handled while it runs
        watcher.stop()

        def ended() -> bool:
            return Scrape(server.metrics_port).values[handled] == before.values[handled] + 1

        assert wait_until(ended), "the cancelled watch was not counted as handled, Canceled"
        after = Scrape(server.metrics_port)
        count = "grpc_server_handling_seconds_count"
        assert after.value(count, **watch) - before.value(count, **watch) == 1
        assert sent() == 2
        created = _method("unary", TX, "CreateTransaction")
        assert after.value("grpc_server_handled_total", **created, grpc_code="OK") >= 2
    finally:
        channel.close()
        server.stop()
