"""A TCP proxy in front of a gRPC server that refuses connections or loses replies on demand.

Losing a reply is the case idempotency keys exist for: the server did the work
and committed, but the caller saw only UNAVAILABLE. The proxy reads the
server's HTTP/2 frames and cuts the connection at the first HEADERS frame of a
stream: a synchronous gRPC server sends a unary reply's headers only once the
handler has returned, so the request was delivered and handled by then.
"""

from __future__ import annotations

import contextlib
import socket
import threading

FRAME_HEADER = 9
HEADERS = 0x1


class LossyProxy:
    """Listens on 127.0.0.1 and forwards to `upstream_port`, misbehaving as told."""

    def __init__(self, upstream_port: int):
        self._upstream = ("127.0.0.1", upstream_port)
        self._lock = threading.Lock()
        self._refuse = 0
        self._lose = 0
        self.refused = 0
        self.lost = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse_connections(self, count: int) -> None:
        """Close the next `count` connections as soon as they are accepted."""
        with self._lock:
            self._refuse = count

    def lose_replies(self, count: int) -> None:
        """Deliver the next `count` requests, then drop the connection instead of the reply."""
        with self._lock:
            self._lose = count

    def close(self) -> None:
        """Stop accepting (open connections end with their peers)."""
        self._listener.close()

    def _take(self, what: str) -> bool:
        with self._lock:
            if what == "refuse" and self._refuse:
                self._refuse, self.refused = self._refuse - 1, self.refused + 1
                return True
            if what == "lose" and self._lose:
                self._lose, self.lost = self._lose - 1, self.lost + 1
                return True
            return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._take("refuse"):
                client.close()
                continue
            server = socket.create_connection(self._upstream)
            threading.Thread(target=_pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client), daemon=True).start()

    def _replies(self, server: socket.socket, client: socket.socket) -> None:
        """Forward whole HTTP/2 frames; only a stream's HEADERS frame can be the one lost."""
        buffer = b""
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                buffer += data
                out = b""
                while len(buffer) >= FRAME_HEADER:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < FRAME_HEADER + length:
                        break
                    stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                    if buffer[3] == HEADERS and stream and self._take("lose"):
                        client.sendall(out)
                        _shut(client, server)
                        return
                    out, buffer = out + buffer[: FRAME_HEADER + length], buffer[FRAME_HEADER + length :]
                client.sendall(out)
        _shut(client, server)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    _shut(src, dst)


def _shut(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
