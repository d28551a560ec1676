"""The transaction pages: the list, one transaction with its timeline, cancel and refund.

Writes follow POST-redirect-GET for plain forms; for htmx the same handler answers with the
re-rendered detail panel, the message in it. Either way the service's error is shown in words.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlencode

import grpc
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dashboard import views
from dashboard.errors import ServiceError
from dashboard.listing import ListQuery
from dashboard.money import AmountError, format_minor, major_units_hint, parse_major
from dashboard.sessions import Session
from dashboard.web import checked_form, is_htmx, not_found, parts, render, require_session
from payments.transaction.v1 import transaction_pb2 as pb

_KEY = re.compile(r"^[A-Za-z0-9-]{8,64}$")
HIDDEN_FROM_CALLER = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


async def list_page(request: Request) -> Response:
    """GET /transactions: newest first, filtered, one keyset page at a time."""
    session = require_session(request)
    p = parts(request)
    query, errors = ListQuery.parse(request.query_params, is_admin=session.user.is_admin)
    rows: list[views.TxView] = []
    next_token, failure = "", ""
    try:
        request_message = query.request(p.settings.dashboard_page_size)
        reply = await p.backend.call(session, p.backend.tx.ListTransactions, request_message)
    except ServiceError as err:
        if err.code == grpc.StatusCode.INVALID_ARGUMENT and query.page_token:
            session.flash("error", "That page link no longer fits this filter; here is its first page.")
            return RedirectResponse(query.first_page().link(), status_code=303)
        failure = err.words
    else:
        rows = [views.transaction(tx, p.settings.dashboard_locale) for tx in reply.transactions]
        next_token = reply.next_page_token
    context = {
        "query": query,
        "rows": rows,
        "errors": errors,
        "failure": failure,
        "next_link": query.link(page_token=next_token) if next_token else "",
        "first_link": query.first_page().link() if query.page_token else "",
        "owner": query.user_id or session.user.id,
        "live_url": "/live?" + urlencode(query.first_page().params()),
        "prepend": not query.page_token,  # live rows join the list only on its first page
    }
    if is_htmx(request) and request.headers.get("hx-target") == "results":
        response = render(request, "_results.html", context, session=session)
        response.headers["HX-Push-Url"] = query.link(page_token=query.page_token)  # the tidy address
        return response
    return render(request, "transactions.html", context, session=session)


def _is_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _read(request: Request, session: Session, tx_id: str) -> tuple[pb.Transaction, list[Any]] | None:
    """The transaction and its timeline, or None when the caller may not see it (or it is missing).

    A malformed id gets the same not-found page: to a person it is simply not there.
    """
    p = parts(request)
    if not _is_id(tx_id):
        return None
    try:
        tx = (
            await p.backend.call(session, p.backend.tx.GetTransaction, pb.GetTransactionRequest(id=tx_id))
        ).transaction
        events = await p.backend.call(
            session, p.backend.tx.ListTransactionEvents, pb.ListTransactionEventsRequest(transaction_id=tx_id)
        )
    except ServiceError as err:
        if err.code in HIDDEN_FROM_CALLER:
            return None
        raise
    return tx, list(events.events)


async def _detail(
    request: Request,
    session: Session,
    tx_id: str,
    *,
    message: tuple[str, str] | None = None,
    fragment: bool = False,
) -> Response:
    found = await _read(request, session, tx_id)
    if found is None:
        return not_found(request, session)
    tx, events = found
    locale = parts(request).settings.dashboard_locale
    view = views.transaction(tx, locale)
    context = {
        "tx": view,
        "events": [views.event(e) for e in events],
        "owned": tx.user_id == session.user.id,
        "refund_key": uuid.uuid4().hex,
        "amount_hint": major_units_hint(tx.currency, locale),
        "message": message,
    }
    return render(request, "_detail.html" if fragment else "transaction.html", context, session=session)


async def detail_page(request: Request) -> Response:
    """GET /transactions/{id}: one transaction and its event timeline."""
    session = require_session(request)
    return await _detail(request, session, request.path_params["tx_id"])


async def _answer(request: Request, session: Session, tx_id: str, message: tuple[str, str]) -> Response:
    """After a write: the re-rendered panel for htmx, else a redirect with the message flashed."""
    if is_htmx(request):
        return await _detail(request, session, tx_id, message=message, fragment=True)
    session.flash(*message)
    return RedirectResponse(f"/transactions/{tx_id}", status_code=303)


async def cancel(request: Request) -> Response:
    """POST /transactions/{id}/cancel: PENDING → CANCELLED, only if unchanged since it was shown."""
    session = require_session(request)
    form = await checked_form(request, session)
    p, tx_id = parts(request), request.path_params["tx_id"]
    if not _is_id(tx_id):
        return not_found(request, session)
    update = pb.UpdateTransactionStatusRequest(
        id=tx_id,
        status=pb.TRANSACTION_STATUS_CANCELLED,
        etag=str(form.get("etag", "")),
        reason="cancelled in the dashboard",
    )
    try:
        await p.backend.call(session, p.backend.tx.UpdateTransactionStatus, update)
    except ServiceError as err:
        if err.code == grpc.StatusCode.NOT_FOUND:
            return not_found(request, session)
        return await _answer(request, session, tx_id, ("error", err.words))
    return await _answer(request, session, tx_id, ("ok", "The transaction was cancelled."))


async def refund(request: Request) -> Response:
    """POST /transactions/{id}/refund: a full or partial refund, recorded once per form shown."""
    session = require_session(request)
    form = await checked_form(request, session)
    p, tx_id = parts(request), request.path_params["tx_id"]
    found = await _read(request, session, tx_id)
    if found is None:
        return not_found(request, session)
    payment, _ = found
    locale = p.settings.dashboard_locale
    if form.get("scope") == "full":
        amount = payment.amount_minor - payment.refunded_minor
    else:
        try:
            amount = parse_major(str(form.get("amount", "")), payment.currency, locale)
        except AmountError as err:
            return await _answer(request, session, tx_id, ("error", f"Amount: {err}."))
    key = str(form.get("idempotency_key", ""))
    create = pb.CreateTransactionRequest(
        type=pb.TRANSACTION_TYPE_REFUND,
        amount_minor=amount,
        currency=payment.currency,
        refund_of=payment.id,
        description=str(form.get("description", ""))[:500],
        # one key per form shown: sending the same form twice records one refund
        idempotency_key=f"dashboard-refund-{key if _KEY.match(key) else uuid.uuid4().hex}",
    )
    try:
        await p.backend.call(session, p.backend.tx.CreateTransaction, create)
    except ServiceError as err:
        if err.code == grpc.StatusCode.NOT_FOUND:
            return not_found(request, session)
        words = err.words
        if err.reason == "REFUND_EXCEEDS_REMAINING":
            left = format_minor(payment.amount_minor - payment.refunded_minor, payment.currency, locale)
            words = f"{words} At most {left} can still be refunded."
        return await _answer(request, session, tx_id, ("error", words))
    shown = format_minor(amount, payment.currency, locale)
    return await _answer(request, session, tx_id, ("ok", f"A refund of {shown} was recorded; it is pending."))
