"""The list page's filter: read from the query string, sent as ListTransactionsRequest, linked back.

Dates are whole days in UTC, both ends included (the service's `created_to` is exclusive, so
the day after `to` is sent). The page token is the service's opaque keyset cursor, valid only with
the same filter: changing a filter starts again from the first page.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from dashboard.views import STATUSES, TYPES, when
from payments.transaction.v1 import transaction_pb2 as pb

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_TOKEN = 1024


def _day(text: str, label: str, errors: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"{label}: enter a date as YYYY-MM-DD")
        return None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class ListQuery:
    """What the list shows: filters, whose transactions (admins only) and which page."""

    status: str = ""
    type: str = ""
    currency: str = ""
    date_from: date | None = None
    date_to: date | None = None
    user_id: str = ""
    page_token: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str], *, is_admin: bool) -> tuple[ListQuery, list[str]]:
        """The query of `params` and the problems found, in words (bad values are dropped)."""
        errors: list[str] = []
        status = params.get("status", "").upper()
        if status and status not in STATUSES.values():
            errors.append("Status: choose one from the list")
            status = ""
        kind = params.get("type", "").upper()
        if kind and kind not in TYPES.values():
            errors.append("Type: choose one from the list")
            kind = ""
        currency = params.get("currency", "").strip().upper()
        if currency and not _CURRENCY.match(currency):
            errors.append("Currency: enter a three-letter code such as EUR")
            currency = ""
        date_from = _day(params.get("from", ""), "From", errors)
        date_to = _day(params.get("to", ""), "To", errors)
        if date_from and date_to and date_to < date_from:
            errors.append("To: must not be before From")
            date_to = None
        user_id = params.get("user", "").strip() if is_admin else ""
        if user_id:
            try:
                user_id = str(uuid.UUID(user_id))
            except ValueError:
                errors.append("User id: enter a user id (a UUID)")
                user_id = ""
        token = params.get("page_token", "")[:_MAX_TOKEN]
        return cls(status, kind, currency, date_from, date_to, user_id, token), errors

    @property
    def filtered(self) -> bool:
        """True when any filter (not the page) is set."""
        return bool(self.status or self.type or self.currency or self.date_from or self.date_to)

    def request(self, page_size: int) -> pb.ListTransactionsRequest:
        """The ListTransactions request of this page."""
        request = pb.ListTransactionsRequest(
            page_size=page_size,
            page_token=self.page_token,
            status=f"TRANSACTION_STATUS_{self.status}" if self.status else None,
            type=f"TRANSACTION_TYPE_{self.type}" if self.type else None,
            currency=self.currency,
            user_id=self.user_id,
        )
        if self.date_from:
            request.created_from.FromDatetime(_start_of(self.date_from))
        if self.date_to:
            request.created_to.FromDatetime(_start_of(self.date_to + timedelta(days=1)))
        return request

    def params(self, *, page_token: str = "") -> dict[str, str]:
        """The query-string parameters of this filter (and of a page of it)."""
        values = {
            "status": self.status,
            "type": self.type,
            "currency": self.currency,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "user": self.user_id,
            "page_token": page_token,
        }
        return {key: value for key, value in values.items() if value}

    def link(self, *, page_token: str = "") -> str:
        """The list URL of this filter (first page unless `page_token`)."""
        query = urlencode(self.params(page_token=page_token))
        return f"/transactions?{query}" if query else "/transactions"

    def first_page(self) -> ListQuery:
        """The same filter from its first page."""
        return replace(self, page_token="")

    def matches(self, tx: pb.Transaction, owner: str) -> bool:
        """True when `tx` belongs in this list of `owner`'s transactions (for live rows)."""
        created = when(tx.created_at)
        return (
            tx.user_id == owner
            and (not self.status or STATUSES.get(tx.status) == self.status)
            and (not self.type or TYPES.get(tx.type) == self.type)
            and (not self.currency or tx.currency == self.currency)
            and (not self.date_from or (created is not None and created >= _start_of(self.date_from)))
            and (
                not self.date_to
                or (created is not None and created < _start_of(self.date_to + timedelta(days=1)))
            )
        )
