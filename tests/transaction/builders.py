"""The transaction tests' vocabulary: type and status constants, and a valid create request."""

from __future__ import annotations

import uuid
from typing import Any

from payments.transaction.v1 import transaction_pb2 as pb

PAYMENT, REFUND = pb.TRANSACTION_TYPE_PAYMENT, pb.TRANSACTION_TYPE_REFUND
PENDING, COMPLETED = pb.TRANSACTION_STATUS_PENDING, pb.TRANSACTION_STATUS_COMPLETED
FAILED, CANCELLED = pb.TRANSACTION_STATUS_FAILED, pb.TRANSACTION_STATUS_CANCELLED


def payment_request(**fields: Any) -> Any:
    """A valid create request for a EUR payment with a fresh idempotency key, overridable."""
    values: dict[str, Any] = {
        "type": PAYMENT,
        "amount_minor": 1250,
        "currency": "EUR",
        "description": "coffee beans",
        "metadata": {"order": "A-1"},
        "idempotency_key": f"key-{uuid.uuid4()}",
    }
    values.update(fields)
    return pb.CreateTransactionRequest(**values)
