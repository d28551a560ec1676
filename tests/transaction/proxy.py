"""A TCP proxy in front of PostgreSQL that a test can cut and restore, to stage an outage."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from sqlalchemy.engine import make_url


def upstream_of(database_url: str) -> Callable[[], socket.socket]:
    """A connector to the server of `database_url` (Unix socket or TCP)."""
    url = make_url(database_url)
    port = url.port or 5432
    host = url.query.get("host") or url.host or "localhost"
    assert isinstance(host, str)
    if host.startswith("/"):

        def unix() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(f"{host}/.s.PGSQL.{port}")
            return sock

        return unix
    return lambda: socket.create_connection((host, port))


class CuttableProxy:
    """Listens on 127.0.0.1; `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, connect: Callable[[], socket.socket]):
        self._connect = connect
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = self._connect()
            with self._lock:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """PostgreSQL "goes away": open connections break, new ones are refused."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """PostgreSQL is back on the same address."""
        self._listener = self._listen(self.port)

    def close(self) -> None:
        """Stop for good."""
        self.cut()
