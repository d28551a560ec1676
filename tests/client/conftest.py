"""Fixtures of the client-package tests: clients on real channels, and a recorder of attempts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import payments_client as pc
from tests.client.proxy import LossyProxy
from tests.client.recorder import Recorder
from tests.helpers import Caller


@pytest.fixture
def recorder() -> Recorder:
    """A fresh recorder for one test."""
    return Recorder()


@pytest.fixture
def make_client(
    auth_address: str, tx_address: str, recorder: Recorder
) -> Iterator[Callable[..., pc.PaymentsClient]]:
    """Factory: a connected client for a Caller (user or service principal), closed after the test."""
    opened: list[pc.PaymentsClient] = []

    def _make(
        caller: Caller,
        *,
        service: bool = False,
        auth: str | None = None,
        tx: str | None = None,
        **options: Any,
    ) -> pc.PaymentsClient:
        login: pc.Login = (
            pc.ServiceLogin(caller.email, caller.password)
            if service
            else pc.UserLogin(caller.email, caller.password)
        )
        client = pc.connect(auth or auth_address, tx or tx_address, login, interceptors=[recorder], **options)
        opened.append(client)
        return client

    yield _make
    for client in opened:
        client.close()


@pytest.fixture
def alice(new_user: Callable[..., Caller]) -> Caller:
    """A fresh user."""
    return new_user()


@pytest.fixture
def tx_proxy(tx_address: str) -> Iterator[LossyProxy]:
    """A misbehaving proxy in front of the shared transaction server."""
    proxy = LossyProxy(int(tx_address.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()
