"""Every statement the transaction service runs, as the text PostgreSQL sees, in one place.

`transactions` (payments and refunds), `stream` (WatchTransactions) and `processor` (the processor
flow) are its parts, each under the module size limit; callers import `transaction_service.sql`.
"""

from transaction_service.sql.processor import (
    APPLY_RESULT,
    CLAIM_JOBS,
    DROP_JOB,
    RESCHEDULE_JOB,
    START_PROCESSING,
)
from transaction_service.sql.stream import (
    CHANGE_COLUMNS,
    STREAM_CATCH_UP,
    STREAM_HORIZON,
    STREAM_READ,
)
from transaction_service.sql.transactions import (
    ADD_REFUNDED,
    CALLER_ACTIVE,
    CHANGE_STATUS,
    EVENT_COLUMNS,
    EVENTS_OF,
    GET_BY_IDEMPOTENCY_KEY,
    GET_VISIBLE,
    INSERT_PENDING_WITH_EVENT,
    IS_CALLER_ACTIVE,
    LIST_FILTERS,
    LOCK_PAYMENT_FOR_REFUND,
    TRANSACTION_COLUMNS,
    TRANSACTION_FIELDS,
    VISIBLE,
    list_page,
)

__all__ = [
    "ADD_REFUNDED",
    "APPLY_RESULT",
    "CALLER_ACTIVE",
    "CHANGE_COLUMNS",
    "CHANGE_STATUS",
    "CLAIM_JOBS",
    "DROP_JOB",
    "EVENTS_OF",
    "EVENT_COLUMNS",
    "GET_BY_IDEMPOTENCY_KEY",
    "GET_VISIBLE",
    "INSERT_PENDING_WITH_EVENT",
    "IS_CALLER_ACTIVE",
    "LIST_FILTERS",
    "LOCK_PAYMENT_FOR_REFUND",
    "RESCHEDULE_JOB",
    "START_PROCESSING",
    "STREAM_CATCH_UP",
    "STREAM_HORIZON",
    "STREAM_READ",
    "TRANSACTION_COLUMNS",
    "TRANSACTION_FIELDS",
    "VISIBLE",
    "list_page",
]
