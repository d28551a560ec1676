"""Payment processor connectors: one interface (`base.Connector`), one module per processor.

No SQL and no gRPC here: a connector turns the transaction service's requests into a processor's
HTTP calls and the processor's answers and webhooks into typed results.
"""

from transaction_service.connectors.base import (
    AttemptKind,
    Connector,
    ObjectKind,
    Outcome,
    PaymentRequest,
    ProcessorError,
    ProcessorResult,
    RefundRequest,
    WebhookEvent,
    WebhookProblem,
    WebhookRejected,
    idempotency_key_for,
    reference_for,
    transaction_id_of,
)
from transaction_service.connectors.payment_methods import InvalidPaymentMethod, check_payment_method

__all__ = [
    "AttemptKind",
    "Connector",
    "InvalidPaymentMethod",
    "ObjectKind",
    "Outcome",
    "PaymentRequest",
    "ProcessorError",
    "ProcessorResult",
    "RefundRequest",
    "WebhookEvent",
    "WebhookProblem",
    "WebhookRejected",
    "check_payment_method",
    "idempotency_key_for",
    "reference_for",
    "transaction_id_of",
]
