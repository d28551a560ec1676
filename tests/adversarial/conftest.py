"""Fixtures of the adversarial campaign: service processes, the transaction tests' helpers, a victim.

The campaign's tools (figures, every RPC, invariants) live in tests/adversarial/tools.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.helpers import Caller, free_port
from tests.servers import ServiceProcess
from tests.transaction import conftest as transaction_fixtures


@pytest.fixture
def service_process(database_url: str, auth_address: str) -> Iterator[Callable[..., ServiceProcess]]:
    """Factory of transaction service processes (killed at the end of the test)."""
    made: list[ServiceProcess] = []

    def _make(**env: str) -> ServiceProcess:
        made.append(ServiceProcess(database_url, auth_address, free_port(), dict(env)))
        return made[-1]

    yield _make
    for process in made:
        process.stop()


# the transaction tests' fixtures, shared here
create = transaction_fixtures.create
settle = transaction_fixtures.settle


@pytest.fixture
def owner_with_data(
    new_user: Callable[..., Caller], create: Callable[..., Any], settle: Callable[..., Any]
) -> tuple[Caller, Any, Any]:
    """A user with a PENDING transaction and a COMPLETED payment: something to steal or break."""
    owner = new_user()
    pending = create(owner, amount_minor=500)
    payment = settle(create(owner, amount_minor=900).id)
    return owner, pending, payment


@pytest.fixture
def clean_ipv6_peer(db_engine: Engine) -> Iterator[None]:
    """The [::1] peer counter starts and ends empty, so that other tests on [::1] are not affected."""

    def forget() -> None:
        with db_engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM auth.login_throttle"
                    " WHERE key LIKE 'peer:ipv6:%' OR key LIKE 'register:ipv6:%'"
                )
            )

    forget()
    yield
    forget()
