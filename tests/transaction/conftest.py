"""Fixtures of the transaction tests: fresh users and short ways to create and settle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from payments.transaction.v1 import transaction_pb2 as pb
from tests.helpers import Caller
from tests.transaction.builders import COMPLETED, payment_request


@pytest.fixture
def alice(new_user: Callable[..., Caller]) -> Caller:
    """A fresh user who owns the transactions under test."""
    return new_user()


@pytest.fixture
def bob(new_user: Callable[..., Caller]) -> Caller:
    """Another fresh user who must not see alice's transactions."""
    return new_user()


@pytest.fixture
def create(tx_stub: Any) -> Callable[..., Any]:
    """Create a transaction as `caller`; returns the Transaction message."""

    def _create(caller: Caller, **fields: Any) -> Any:
        return tx_stub.CreateTransaction(payment_request(**fields), metadata=caller.md).transaction

    return _create


@pytest.fixture
def settle(tx_stub: Any, settle_client: Caller) -> Callable[..., Any]:
    """Move a transaction to `status` (default COMPLETED) as the settlement service."""

    def _settle(tx_id: str, status: int = COMPLETED) -> Any:
        request = pb.UpdateTransactionStatusRequest(id=tx_id, status=status, reason="settled by test")
        return tx_stub.UpdateTransactionStatus(request, metadata=settle_client.md).transaction

    return _settle


@pytest.fixture
def completed_payment(create: Callable[..., Any], settle: Callable[..., Any], alice: Caller) -> Any:
    """A COMPLETED payment of alice for 10.00 EUR."""
    return settle(create(alice, amount_minor=1000).id)
