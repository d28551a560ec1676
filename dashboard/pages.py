"""The summary page, the front door and the health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from dashboard import summary
from dashboard.errors import ServiceError
from dashboard.listing import ListQuery
from dashboard.sessions import Session
from dashboard.web import Parts, current_session, parts, render, require_session
from payments.transaction.v1 import transaction_pb2 as pb

SUMMARY_PAGE_SIZE = 500  # the service's largest page: fewest round trips


async def home(request: Request) -> Response:
    """GET /: the list when logged in, else the login page."""
    target = "/transactions" if current_session(request) is not None else "/login"
    return RedirectResponse(target, status_code=303)


async def _window(p: Parts, session: Session, user_id: str, since: datetime) -> AsyncIterator[pb.Transaction]:
    request = pb.ListTransactionsRequest(page_size=SUMMARY_PAGE_SIZE, user_id=user_id)
    request.created_from.FromDatetime(since)
    while True:
        reply = await p.backend.call(session, p.backend.tx.ListTransactions, request)
        for tx in reply.transactions:
            yield tx
        if not reply.next_page_token:
            return
        request.page_token = reply.next_page_token


async def summary_page(request: Request) -> Response:
    """GET /summary: the last 30 days per status and currency, as a chart and a table."""
    session = require_session(request)
    p = parts(request)
    query, errors = ListQuery.parse(request.query_params, is_admin=session.user.is_admin)
    since = datetime.now(UTC) - timedelta(days=summary.WINDOW_DAYS)
    failure, figures = "", summary.Summary([], 0, False)
    cap = p.settings.dashboard_summary_max_rows
    try:
        rows = [tx async for tx in _capped(_window(p, session, query.user_id, since), cap + 1)]
    except ServiceError as err:
        failure = err.words
    else:
        figures = summary.summarize(rows, max_rows=cap)
    context = {
        "query": query,
        "errors": errors,
        "failure": failure,
        "summary": figures,
        "chart": summary.chart(figures, p.settings.dashboard_locale),
        "days": summary.WINDOW_DAYS,
        "since": since.strftime("%Y-%m-%d %H:%M UTC"),
        "owner": query.user_id or session.user.id,
    }
    return render(request, "summary.html", context, session=session)


async def _capped(rows: AsyncIterator[pb.Transaction], limit: int) -> AsyncIterator[pb.Transaction]:
    """At most `limit` rows, without fetching pages beyond them."""
    taken = 0
    async for row in rows:
        yield row
        taken += 1
        if taken >= limit:
            return


async def healthz(_request: Request) -> Response:
    """GET /healthz: the process serves requests (liveness)."""
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """GET /readyz: both services answer SERVING (readiness)."""
    ready = await parts(request).backend.ready()
    return PlainTextResponse("ready" if ready else "not ready", status_code=200 if ready else 503)
