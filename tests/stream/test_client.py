"""payments_client's watch(): reconnects with the last token, renews tokens, drops repeats, stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import payments_client as pc
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common.server import RunningServer
from tests.forge import claims_of, current_signing_key, sign
from tests.helpers import Caller
from tests.stream.scripted import Connection, ScriptedServer
from tests.stream.watching import payment

Code = grpc.StatusCode


class Tokens:
    """Hands out token-0, token-1, ...: a new one after each refusal."""

    def __init__(self) -> None:
        self.invalidated: list[str] = []

    def access_token(self) -> str:
        return f"token-{len(self.invalidated)}"

    def invalidate(self, access_token: str) -> None:
        self.invalidated.append(access_token)


class FirstShortLived:
    """A token source whose first token expires in seconds; then the real source's tokens."""

    def __init__(self, real: pc.TokenSource, short: str):
        self._real, self._short = real, short
        self.renewed = False

    def access_token(self) -> str:
        return self._short or self._real.access_token()

    def invalidate(self, access_token: str) -> None:
        if access_token == self._short:
            self._short, self.renewed = "", True
        else:
            self._real.invalidate(access_token)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Connection]], tuple[pc.ChangeStream, Any, list[float]]]]:
    """Factory: a ChangeStream on a scripted server; returns it, the servicer and the pauses it made."""
    made: list[tuple[ScriptedServer, grpc.Channel, pc.ChangeStream]] = []

    def _make(script: list[Connection], **options: Any) -> tuple[pc.ChangeStream, Any, list[float]]:
        server = ScriptedServer(script)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        pauses: list[float] = []
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        stream = pc.ChangeStream(stub.WatchTransactions, Tokens(), sleep=pauses.append, **options)
        made.append((server, channel, stream))
        return stream, server.servicer, pauses

    yield _make
    for server, channel, stream in made:
        stream.close()
        channel.close()
        server.stop()


def _take(stream: pc.ChangeStream, count: int) -> list[str]:
    return [next(stream).event_id for _ in range(count)]


def test_it_resumes_with_the_newest_token_and_drops_repeats_by_event_id(scripted: Any) -> None:
    stream, servicer, pauses = scripted(
        [
            Connection(["e1", "e2"], resume_token="where-it-stopped"),
            Connection(["e2", "e3"], code=Code.UNAVAILABLE),
            Connection(["e4"], code=None),
        ],
        resume_token="given",
    )
    assert _take(stream, 4) == ["e1", "e2", "e3", "e4"]
    sent = [request.resume_token for request, _md in servicer.requests]
    assert sent == ["given", "where-it-stopped", "after-e3"]
    assert (stream.repeats, stream.reconnects, stream.resume_token) == (1, 2, "after-e4")
    assert len(pauses) == 2 and all(0 < pause <= 10 for pause in pauses)  # backoff with jitter
    request_ids = {md["x-request-id"] for _request, md in servicer.requests}
    assert len(request_ids) == 1  # one watch, one request id in the server logs


def test_a_refused_token_is_renewed_once_and_a_permanent_error_ends_the_iteration(scripted: Any) -> None:
    stream, servicer, pauses = scripted(
        [
            Connection([], code=Code.UNAUTHENTICATED, reason="TOKEN_EXPIRED"),
            Connection(["e1"], code=Code.PERMISSION_DENIED, reason="WATCH_SCOPE_REQUIRED"),
        ]
    )
    assert _take(stream, 1) == ["e1"]
    with pytest.raises(pc.PaymentsError) as failed:
        next(stream)
    assert (failed.value.code(), failed.value.reason) == (Code.PERMISSION_DENIED, "WATCH_SCOPE_REQUIRED")
    assert [md["authorization"] for _request, md in servicer.requests] == ["Bearer token-0", "Bearer token-1"]
    assert pauses == []  # a renewed token is tried at once


def test_a_second_refusal_in_a_row_is_final_and_the_watcher_limit_is_waited_out(scripted: Any) -> None:
    stream, _servicer, _pauses = scripted([Connection([], code=Code.UNAUTHENTICATED)] * 2)
    with pytest.raises(pc.PaymentsError) as failed:
        next(stream)
    assert failed.value.code() == Code.UNAUTHENTICATED
    limited, _servicer, pauses = scripted(
        [Connection([], code=Code.RESOURCE_EXHAUSTED, retry_delay=3.0), Connection(["e1"], code=None)]
    )
    assert _take(limited, 1) == ["e1"]
    assert pauses and pauses[0] >= 3.0


def test_close_from_another_thread_ends_the_iteration(scripted: Any) -> None:
    stream, _servicer, _pauses = scripted([Connection(["e1"], code=None)])
    assert _take(stream, 1) == ["e1"]
    threading.Timer(0.2, stream.close).start()
    started = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - started < 5


def test_watch_follows_across_a_restart_of_the_server_and_renews_an_expired_token(
    start_tx: Callable[..., RunningServer],
    stream_stub: Any,
    auth_address: str,
    new_user: Callable[..., Caller],
    db_engine: Any,
) -> None:
    first = start_tx()
    port = first.port
    alice = new_user()
    kid, key, _jwk = current_signing_key(db_engine)
    short = sign(claims_of(alice.id, exp=int(time.time()) + 4), key, kid)
    auth_channel, tx_channel = pc.open_channel(auth_address), pc.open_channel(f"127.0.0.1:{port}")
    tokens = FirstShortLived(
        pc.AuthClient(auth_channel).login(pc.UserLogin(alice.email, alice.password)), short
    )
    client = pc.PaymentsClient(tx_channel, tokens)  # type: ignore[arg-type]
    stream = client.watch()
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(c.transaction.id for c in stream), daemon=True)
    reader.start()
    made = [payment(stream_stub, alice).id]
    _until(lambda: len(got) == 1)
    first.stop()  # drain: the stream ends UNAVAILABLE; the client waits and reconnects
    made.append(payment(stream_stub, alice).id)  # while nobody serves the watch
    start_tx(transaction_port=port)
    made.append(payment(stream_stub, alice).id)
    _until(lambda: len(got) == 3)
    _until(lambda: tokens.renewed, seconds=10)  # the first token expired: UNAUTHENTICATED, renewed
    made.append(payment(stream_stub, alice).id)
    _until(lambda: len(got) == 4)
    stream.close()
    reader.join(5)
    for channel in (auth_channel, tx_channel):
        channel.close()
    assert got == made
    assert stream.reconnects >= 2 and stream.repeats == 0


def _until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
