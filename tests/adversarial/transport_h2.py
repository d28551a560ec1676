"""HTTP/2 connections driven by h2, frame by frame, as a hostile client would drive them.

`RawConnection` ignores the server's stream limit, may keep its flow-control window at 0 and
sends whatever its caller asks; `Pumps` keeps connections answered (SETTINGS, PING) from one
thread and `total` adds their tallies up; `silent_calls` holds many calls that send their
headers and never a message.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from tests.adversarial.transport import LOOPBACK, Metadata, Tally, _grpc_status, grpc_message, request_headers


class HostileConnection(h2.connection.H2Connection):
    """An h2 client that ignores the server's SETTINGS_MAX_CONCURRENT_STREAMS, as an attacker would.

    (h2 refuses to open more streams than the peer allows; the server must enforce it itself.)
    """

    @property
    def open_outbound_streams(self) -> int:
        super().open_outbound_streams  # noqa: B018 - the property also forgets closed streams
        return 0


def _client() -> h2.connection.H2Connection:
    return HostileConnection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))


class RawConnection:
    """One HTTP/2 connection to 127.0.0.1, driven frame by frame by its caller.

    `window` sets SETTINGS_INITIAL_WINDOW_SIZE: with 0 the server may send headers but no DATA
    on any stream, as a client that never reads.
    """

    def __init__(self, port: int, *, window: int | None = None, timeout: float = 5.0) -> None:
        self.port = port
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.h2 = _client()
        if window is not None:
            self.h2.local_settings = h2.settings.Settings(
                client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
            )
        self.h2.initiate_connection()
        self.tally = Tally()
        self.opened = time.monotonic()
        self.lock = threading.Lock()
        self.settled = False  # the server's SETTINGS received (and acknowledged)
        self.flush()
        # as grpc clients do, wait for the server's SETTINGS before opening streams: until they
        # are acknowledged the server refuses streams over its limit with ENHANCE_YOUR_CALM
        deadline = time.monotonic() + timeout
        while not self.settled and time.monotonic() < deadline and self.pump(0.05):
            pass

    def flush(self) -> None:
        """Send what h2 has queued (frames, ACKs)."""
        data = self.h2.data_to_send()
        if data and self.tally.closed_after is None:
            try:
                self.sock.sendall(data)
            except OSError:
                self._closed()

    def open_stream(self, path: str, metadata: Metadata = (), message: bytes | None = None) -> int:
        """Send a request's headers and, if given, its one message with END_STREAM."""
        with self.lock:
            stream_id: int = self.h2.get_next_available_stream_id()
            self.h2.send_headers(stream_id, request_headers(self.port, path, metadata))
            if message is not None:
                self.h2.send_data(stream_id, grpc_message(message), end_stream=True)
            self.flush()
        return stream_id

    def pump(self, timeout: float = 0.0) -> bool:
        """Read what the server sent (h2 acknowledges SETTINGS and PINGs); False once it closed."""
        if self.tally.closed_after is not None:
            return False
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return True
            data = self.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            self._closed()
            return False
        with self.lock:
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self._closed()
                return False
            for event in events:
                self._count(event)
            self.flush()
        return True

    def _count(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settled = True
        elif isinstance(event, h2.events.StreamReset):
            self.tally.resets[int(event.error_code or 0)] += 1
            if event.stream_id is not None:
                self.tally.ended.add(event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
            status = _grpc_status(event.headers or [])
            if status is not None and event.stream_id is not None:
                self.tally.statuses[str(status)] += 1
                self.tally.ended.add(event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.tally.goaway = int(event.error_code or 0)
        elif isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
            # give the connection window back, never the stream's: a zero window stays zero
            self.h2.acknowledge_received_data(0, event.stream_id)

    def _closed(self) -> None:
        if self.tally.closed_after is None:
            self.tally.closed_after = time.monotonic() - self.opened

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Pumps:
    """Keeps connections answered (SETTINGS, PING) from one thread, as a live client would."""

    def __init__(self, connections: Sequence[RawConnection]) -> None:
        self.connections = list(connections)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="h2-pumps", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            live = [c for c in self.connections if c.tally.closed_after is None]
            if not live:
                self._stop.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([c.sock for c in live], [], [], 0.05)
            except (OSError, ValueError):
                continue
            for conn in live:
                if conn.sock in ready:
                    conn.pump(0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def total(connections: Sequence[RawConnection]) -> Tally:
    """The tallies of several connections added up (GOAWAY: the last one seen)."""
    summed = Tally()
    for conn in connections:
        summed.resets += conn.tally.resets
        summed.statuses += conn.tally.statuses
        summed.goaway = conn.tally.goaway if conn.tally.goaway is not None else summed.goaway
    return summed


@contextlib.contextmanager
def silent_calls(
    port: int, connections: int, per_connection: int, calls: Sequence[tuple[str, Metadata]]
) -> Iterator[list[RawConnection]]:
    """`connections` times `per_connection` calls that send their headers and never a message.

    The calls cycle through `calls` (path, metadata). The connections stay answered while the
    block runs; leaving it closes them, which is what ends the calls.
    """
    opened: list[RawConnection] = []
    pumps = Pumps([])
    try:
        for _ in range(connections):
            opened.append(RawConnection(port))
        pumps.connections = opened
        for conn in opened:
            for i in range(per_connection):
                path, metadata = calls[i % len(calls)]
                conn.open_stream(path, metadata)
        yield opened
    finally:
        pumps.stop()
        for conn in opened:
            conn.close()
