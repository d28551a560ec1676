"""HTTP/2 frames written by hand, for what h2 is too slow or too correct to send.

`rapid_reset` opens and cancels streams on one connection as fast as the socket takes them;
`request_before_settings_ack` sends a request (headers of any size) before it acknowledges the
server's SETTINGS. Both read the server's answers with a minimal frame reader.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass

import hpack

from tests.adversarial.transport import (
    ACK,
    CANCEL,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    LOOPBACK,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    Metadata,
    Tally,
    _grpc_status,
    grpc_message,
    request_headers,
)


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
