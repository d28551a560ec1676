"""Request validation that reports every bad field at once (one BadRequest, many violations)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from payments_common.errors import InvalidArgument
from transaction_service import currencies
from transaction_service.connectors.payment_methods import InvalidPaymentMethod, check_payment_method
from transaction_service.domain import NewTransaction, Status, TxType

MAX_DESCRIPTION = 500
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_IDEMPOTENCY_KEY = 128
MAX_REASON = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

Violations = list[tuple[str, str]]


def _text(violations: Violations, field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        violations.append((field, f"must be at most {limit} characters"))
    if "\x00" in value:
        violations.append((field, "must not contain NUL characters"))


def _shown(key: str) -> str:
    return repr(key if len(key) <= MAX_METADATA_KEY else key[:MAX_METADATA_KEY] + "...")


def _metadata(violations: Violations, metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        violations.append(("metadata", f"must have at most {MAX_METADATA_KEYS} keys"))
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY or "\x00" in key:
            violations.append(
                ("metadata", f"key {_shown(key)} must be 1-{MAX_METADATA_KEY} characters, no NUL")
            )
        if len(value) > MAX_METADATA_VALUE or "\x00" in value:
            violations.append(
                (
                    "metadata",
                    f"value of {_shown(key)} must be at most {MAX_METADATA_VALUE} characters, no NUL",
                )
            )


def _amount(violations: Violations, amount: int, currency: str) -> None:
    if amount <= 0:
        violations.append(("amount_minor", "must be a positive number of minor units"))
    elif currencies.exponent(currency) is not None and amount > currencies.max_amount_minor(currency):
        violations.append(
            (
                "amount_minor",
                f"exceeds the maximum for {currency} (exponent {currencies.exponent(currency)}): "
                f"{currencies.max_amount_minor(currency)} minor units",
            )
        )


def _idempotency_key(violations: Violations, key: str) -> None:
    if not key:
        violations.append(("idempotency_key", "is required"))
    elif len(key) > MAX_IDEMPOTENCY_KEY or not all(" " <= c <= "~" for c in key):
        violations.append(("idempotency_key", f"must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters"))


def parse_uuid(violations: Violations, field: str, value: str) -> UUID | None:
    """A canonical UUID, or a violation (a malformed id cannot name anyone's transaction)."""
    try:
        parsed = UUID(value)
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value.lower():
        violations.append((field, "must be a UUID like 123e4567-e89b-12d3-a456-426614174000"))
        return None
    return parsed


def require_uuid(field: str, value: str) -> UUID:
    """Parse one id field or raise InvalidArgument."""
    violations: Violations = []
    parsed = parse_uuid(violations, field, value)
    if parsed is None:
        raise InvalidArgument(violations)
    return parsed


def new_transaction(
    tx_type: TxType | None,
    amount_minor: int,
    currency: str,
    description: str,
    metadata: Mapping[str, str],
    idempotency_key: str,
    refund_of: str,
    payment_method: str = "",
) -> NewTransaction:
    """Validate a create request completely; raise one InvalidArgument listing every problem."""
    violations: Violations = []
    if tx_type is None:
        violations.append(("type", "must be PAYMENT or REFUND"))
    _amount(violations, amount_minor, currency)
    if currencies.exponent(currency) is None:
        violations.append(("currency", "must be a supported ISO 4217 code in upper case, e.g. EUR"))
    _text(violations, "description", description, MAX_DESCRIPTION)
    _metadata(violations, metadata)
    _idempotency_key(violations, idempotency_key)
    refund_target: UUID | None = None
    if tx_type == TxType.REFUND:
        if not refund_of:
            violations.append(("refund_of", "is required for a REFUND"))
        else:
            refund_target = parse_uuid(violations, "refund_of", refund_of)
    elif tx_type == TxType.PAYMENT and refund_of:
        violations.append(("refund_of", "must be empty for a PAYMENT"))
    method = _payment_method(violations, tx_type, payment_method)
    if violations or tx_type is None:
        raise InvalidArgument(violations)
    return NewTransaction(
        tx_type, amount_minor, currency, description, dict(metadata), idempotency_key, refund_target, method
    )


def _payment_method(violations: Violations, tx_type: TxType | None, value: str) -> str | None:
    """A processor token, or None; the message never repeats the value (it may be a card number)."""
    if not value:
        return None
    if tx_type == TxType.REFUND:
        violations.append(("payment_method", "must be empty for a REFUND (it goes back to the payment's)"))
        return None
    try:
        return check_payment_method(value)
    except InvalidPaymentMethod as err:
        violations.append(("payment_method", str(err)))
        return None


def update_request(
    tx_id: str, status: Status | None, etag: str, reason: str
) -> tuple[UUID, Status, int | None]:
    """The id, target status and optional etag version of an update request."""
    violations: Violations = []
    parsed_id = parse_uuid(violations, "id", tx_id)
    if status is None:
        violations.append(("status", "must be COMPLETED, FAILED or CANCELLED"))
    elif status == Status.PROCESSING:
        violations.append(("status", "PROCESSING is set by the payment processor flow, not by a caller"))
    version: int | None = None
    if etag:
        if etag.isascii() and etag.isdigit() and len(etag) <= 10:
            version = int(etag)
        else:
            violations.append(("etag", "is not an etag returned by this service"))
    _text(violations, "reason", reason, MAX_REASON)
    if violations or status is None or parsed_id is None:
        raise InvalidArgument(violations)
    return parsed_id, status, version


def page_size(violations: Violations, requested: int) -> int:
    """0 means the default; above the maximum is lowered; negative is refused."""
    if requested < 0:
        violations.append(("page_size", "must not be negative"))
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def created_range(violations: Violations, start: datetime | None, end: datetime | None) -> None:
    """An empty or inverted created-at range is a mistake worth telling the caller about."""
    if start is not None and end is not None and end <= start:
        violations.append(("created_to", "must be after created_from"))


def currency_filter(violations: Violations, currency: str) -> str | None:
    """An optional currency filter; an unsupported code could never match, so it is refused."""
    if currency and currencies.exponent(currency) is None:
        violations.append(("currency", "must be a supported ISO 4217 code in upper case, e.g. EUR"))
    return currency or None
