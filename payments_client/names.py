"""Enum numbers of the wire as the names the client takes: `status_name(tx.status) == "COMPLETED"`.

A `Transaction` from the client is the generated message, whose `status` and `type` are numbers
(printing one shows `2`); these give the short names that `update_status` and
`list_transactions` accept, so what a caller reads back it can pass in again.
"""

from __future__ import annotations

from payments.transaction.v1 import transaction_pb2 as pb


def status_name(status: int) -> str:
    """`TRANSACTION_STATUS_COMPLETED` (2) as "COMPLETED"; a number this client does not know as itself."""
    try:
        return pb.TransactionStatus.Name(status).removeprefix("TRANSACTION_STATUS_")
    except ValueError:  # a newer server's status
        return str(status)


def type_name(kind: int) -> str:
    """`TRANSACTION_TYPE_REFUND` (2) as "REFUND"; a number this client does not know as itself."""
    try:
        return pb.TransactionType.Name(kind).removeprefix("TRANSACTION_TYPE_")
    except ValueError:
        return str(kind)
