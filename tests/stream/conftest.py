"""Fixtures of the change-stream tests: tuned transaction servers and stubs on real channels.

The suite's shared fixtures (database_url, auth_address, new_user, admin_user,
make_service_principal, db_engine, disposable_database) come from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from payments_common.server import RunningServer
from tests.stream.servers import stream_settings
from tests.stream.watching import stub_at


@pytest.fixture
def start_tx(database_url: str, auth_address: str) -> Iterator[Callable[..., RunningServer]]:
    """Factory: an in-process transaction server with setting overrides, stopped after the test."""
    from transaction_service.app import start

    started: list[RunningServer] = []

    def _start(**overrides: Any) -> RunningServer:
        started.append(start(stream_settings(database_url, auth_address, **overrides)))
        return started[-1]

    yield _start
    for running in started:
        running.stop()


@pytest.fixture(scope="package")
def stream_address(database_url: str, auth_address: str) -> Iterator[str]:
    """The transaction server most stream tests share (quick polling and account checks)."""
    from transaction_service.app import start

    running = start(stream_settings(database_url, auth_address))
    yield f"127.0.0.1:{running.port}"
    running.stop()


@pytest.fixture(scope="package")
def stream_stub(stream_address: str) -> Iterator[Any]:
    """A stub on a real channel to the shared stream server."""
    channel, stub = stub_at(stream_address)
    yield stub
    channel.close()


@pytest.fixture(scope="package")
def watch_principal(make_service_principal: Callable[[list[str]], Any]) -> Any:
    """A service principal with the transactions:watch scope."""
    return make_service_principal(["transactions:watch"])
