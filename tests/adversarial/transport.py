"""Raw HTTP/2 clients for the transport properties: what a hostile peer can do below gRPC.

Each client speaks HTTP/2 with `h2` over a plain socket to 127.0.0.1 only, and every loop is
bounded in count and time. Nothing here is a gRPC library: a stream is opened, fed and reset
frame by frame, so a test can send headers and never a message, cancel thousands of streams a
second, never open its flow-control window, or send a request before it acknowledges the
server's SETTINGS.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

# their per-frame DEBUG lines would flood the session's log capture
logging.getLogger("hpack").setLevel(logging.WARNING)
logging.getLogger("h2").setLevel(logging.WARNING)

LOOPBACK = "127.0.0.1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY_FRAME, RST_STREAM, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONTINUATION = range(10)
ACK = END_STREAM = 0x1
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20
CANCEL, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x8, 0x7, 0xB
Metadata = Sequence[tuple[str, str]]


def grpc_message(payload: bytes) -> bytes:
    """One length-prefixed, uncompressed gRPC message."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def request_headers(port: int, path: str, metadata: Metadata = ()) -> list[tuple[str, str]]:
    """The headers of a gRPC request, as grpc clients send them."""
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", f"{LOOPBACK}:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *metadata,
    ]


@dataclass
class Tally:
    """What the server did to one connection and its streams."""

    resets: Counter[int] = field(default_factory=Counter)  # RST_STREAM error codes received
    statuses: Counter[str] = field(default_factory=Counter)  # grpc-status of the streams it ended
    goaway: int | None = None  # error code of the server's GOAWAY, if one came
    closed_after: float | None = None  # seconds from connecting to the server closing the socket
    ended: set[int] = field(default_factory=set)  # streams the server ended (trailers or reset)


class HostileConnection(h2.connection.H2Connection):
    """An h2 client that ignores the server's SETTINGS_MAX_CONCURRENT_STREAMS, as an attacker would.

    (h2 refuses to open more streams than the peer allows; the server must enforce it itself.)
    """

    @property
    def open_outbound_streams(self) -> int:
        super().open_outbound_streams  # noqa: B018 - the property also forgets closed streams
        return 0


def _grpc_status(headers: Any) -> str | None:
    """The grpc-status of decoded headers (h2 and hpack give str pairs here), if there is one."""
    for name, value in headers:
        if name in ("grpc-status", b"grpc-status"):
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


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


@dataclass
class ResetRun:
    """Figures of one rapid-reset run on one connection."""

    streams: int  # streams opened (headers and a message), each cancelled at once
    seconds: float
    tally: Tally

    @property
    def rate(self) -> float:
        return self.streams / self.seconds if self.seconds else 0.0


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id) + payload


class _Frames:
    """A minimal reader of the server's frames for the rapid-reset loop (h2 is too slow there)."""

    def __init__(self, sock: socket.socket, tally: Tally, opened: float, ack_settings: bool = True) -> None:
        self.sock, self.tally, self.opened, self.ack_settings = sock, tally, opened, ack_settings
        self.buffer = b""
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16

    def read(self, timeout: float) -> bool:
        """Handle what arrived (ACK SETTINGS and PINGs); False once the server closed or said GOAWAY."""
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            data = self.sock.recv(1 << 20) if ready else None
        except OSError:
            data = b""
        if data == b"":
            self.tally.closed_after = time.monotonic() - self.opened
            return False
        self.buffer += data or b""
        replies = b""
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                break
            kind, flags = self.buffer[3], self.buffer[4]
            payload, self.buffer = self.buffer[9 : 9 + length], self.buffer[9 + length :]
            if kind == SETTINGS and not flags & ACK and self.ack_settings:
                replies += _frame(SETTINGS, ACK, 0)
            elif kind == PING and not flags & ACK:
                replies += _frame(PING, ACK, 0, payload)
            elif kind == RST_STREAM:
                self.tally.resets[int.from_bytes(payload[:4], "big")] += 1
            elif kind == GOAWAY:
                self.tally.goaway = int.from_bytes(payload[4:8], "big")
            elif kind == HEADERS:  # decoded to keep the HPACK table in step (no CONTINUATION here)
                status = _grpc_status(self.decoder.decode(_header_block(flags, payload)))
                if status is not None:
                    self.tally.statuses[str(status)] += 1
        if replies:
            with contextlib.suppress(OSError):
                self.sock.sendall(replies)
        return self.tally.goaway is None


def _header_block(flags: int, payload: bytes) -> bytes:
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if flags & PRIORITY:
        start += 5
    return payload[start:end]


def rapid_reset(
    port: int, path: str, metadata: Metadata, message: bytes, seconds: float, batch: int = 100
) -> ResetRun:
    """Open streams and cancel each at once, on one connection, for `seconds` or until closed.

    Frames are built once and written in batches (each stream: HEADERS, its message, RST_STREAM
    CANCEL); the header block is never indexed, so the same bytes serve every stream.
    """
    block = hpack.Encoder().encode([(n, v, True) for n, v in request_headers(port, path, metadata)])
    body = grpc_message(message)
    tally = Tally()
    opened = time.monotonic()
    streams = 0
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frames = _Frames(sock, tally, opened)
        try:
            sock.sendall(PREFACE + _frame(SETTINGS, 0, 0))
            stream_id = 1
            while time.monotonic() - opened < seconds and frames.read(0):
                out = []
                for _ in range(batch):
                    out += [
                        _frame(HEADERS, END_HEADERS, stream_id, block),
                        _frame(DATA, 0, stream_id, body),
                        _frame(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL)),
                    ]
                    stream_id += 2
                sock.sendall(b"".join(out))
                streams += batch
        except OSError:
            tally.closed_after = time.monotonic() - opened
        elapsed = time.monotonic() - opened
        deadline = time.monotonic() + 1.0  # what the server says last
        while tally.closed_after is None and time.monotonic() < deadline:
            frames.read(0.1)
    return ResetRun(streams, elapsed, tally)


def request_before_settings_ack(
    port: int, path: str, metadata: Metadata, message: bytes, timeout: float = 10.0
) -> Tally:
    """Preface, SETTINGS and one request in a single write; the server's SETTINGS are never acked.

    So the server reads the request while its own limits are not yet acknowledged. The header
    block goes out as HEADERS plus CONTINUATION frames of 16 KiB (the largest frame a server
    must accept before its SETTINGS say otherwise).
    """
    block = hpack.Encoder().encode(request_headers(port, path, metadata), huffman=False)
    chunks = [block[i : i + 16384] for i in range(0, len(block), 16384)] or [b""]
    frames = [_frame(HEADERS, END_HEADERS if len(chunks) == 1 else 0, 1, chunks[0])]
    for i, chunk in enumerate(chunks[1:], start=2):
        frames.append(_frame(CONTINUATION, END_HEADERS if i == len(chunks) else 0, 1, chunk))
    frames.append(_frame(DATA, END_STREAM, 1, grpc_message(message)))
    tally = Tally()
    opened = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        reader = _Frames(sock, tally, opened, ack_settings=False)
        with contextlib.suppress(OSError):
            sock.sendall(PREFACE + _frame(SETTINGS, 0, 0) + b"".join(frames))
        while not tally.resets and not tally.statuses and time.monotonic() - opened < timeout:
            if not reader.read(0.1):
                break
    return tally
