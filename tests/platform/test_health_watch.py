"""Health as watchers and probers see it: a message per change, never a repeat, never early SERVING."""

from __future__ import annotations

import queue
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_common.config import CommonSettings
from payments_common.server import Service, start_server
from tests.helpers import free_port, wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
AUTH = "payments.auth.v1.AuthService"


class HealthWatch:
    """`grpc.health.v1.Health/Watch(service)` read on a thread; each status in `statuses`."""

    def __init__(self, address: str, service: str):
        self.channel = grpc.insecure_channel(address)
        self.statuses: queue.Queue[int] = queue.Queue()
        request = health_pb2.HealthCheckRequest(service=service)
        self.call = health_pb2_grpc.HealthStub(self.channel).Watch(request)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for reply in self.call:
                self.statuses.put(reply.status)
        except grpc.RpcError:
            pass  # the server went away: what arrived before is what counts

    def next(self, timeout: float) -> int | None:
        try:
            return self.statuses.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.call.cancel()
        self.channel.close()


def test_health_watch_sends_a_status_once_not_on_every_probe_and_then_the_change(start_auth):
    probes = 0
    running = start_auth(health_check_interval_seconds=0.02)
    original = running.probe

    def counted() -> bool:
        nonlocal probes
        probes += 1
        return original()

    running.probe = counted  # each probe sets every entry again, SERVING as before
    watch = HealthWatch(f"127.0.0.1:{running.port}", AUTH)
    try:
        assert watch.next(timeout=5) == SERVING
        before = probes
        assert wait_until(lambda: probes >= before + 15, seconds=10), "the health loop stopped probing"
        assert watch.next(timeout=0.3) is None, "a repeat of an unchanged status was sent"
        running.stop()  # a real change: the drain turns every entry NOT_SERVING
        assert watch.next(timeout=5) == NOT_SERVING
        assert watch.next(timeout=0.5) is None
    finally:
        watch.close()


def test_health_is_not_serving_before_the_first_probe_has_answered():
    """A readiness check in the window between listening and the first probe must not pass."""
    answer = threading.Event()
    port = free_port()
    settings = CommonSettings(_env_file=None, grpc_host="127.0.0.1", shutdown_grace_seconds=0)  # type: ignore[call-arg]
    started: list = []
    starting = threading.Thread(
        target=lambda: started.append(
            start_server(
                settings, port, [Service("test.Svc", lambda _server: None)], [], lambda: answer.wait(20)
            )
        ),
        daemon=True,
    )
    starting.start()
    seen: list[object] = []

    def answered() -> bool:
        """Check "" and the service (a status, or the error code); False while not listening."""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            seen.clear()
            for service in ("", "test.Svc"):
                try:
                    seen.append(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status)
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.UNAVAILABLE:
                        return False
                    seen.append(err.code().name)
        return True

    try:
        assert wait_until(answered, seconds=10), "the server did not start listening"
        assert seen == [NOT_SERVING, NOT_SERVING]
        assert not started, "start_server returned before its first probe"
    finally:
        answer.set()
        starting.join(10)
    running = started[0]
    try:
        assert wait_until(answered, seconds=5) and seen == [SERVING, SERVING]
    finally:
        running.stop()
