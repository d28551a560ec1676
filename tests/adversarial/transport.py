"""Raw HTTP/2 for the transport properties: what a hostile peer can do below gRPC.

Each client speaks HTTP/2 with `h2` over a plain socket to 127.0.0.1 only, and every loop is
bounded in count and time. Nothing here is a gRPC library: a stream is opened, fed and reset
frame by frame, so a test can send headers and never a message, cancel thousands of streams a
second, never open its flow-control window, or send a request before it acknowledges the
server's SETTINGS.

This module is their shared vocabulary: frame types, flags and error codes, a gRPC request's
headers and message, and the `Tally` of what the server did. The clients are in
transport_h2.py (connections driven by h2) and transport_frames.py (frames written by hand,
where h2 is too slow or too correct).
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


def _grpc_status(headers: Any) -> str | None:
    """The grpc-status of decoded headers (h2 and hpack give str pairs here), if there is one."""
    for name, value in headers:
        if name in ("grpc-status", b"grpc-status"):
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
