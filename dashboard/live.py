"""GET /live: WatchTransactions relayed to the browser as server-sent events.

The gRPC stream runs here with the session's token; the browser gets HTML fragments rendered
(and escaped) by the same templates as the pages: an `activity` event for every change it may
see, and a `row` event when the changed transaction belongs in the list it is showing. Each
event's SSE id is the change's resume token, so an EventSource that reconnects (Last-Event-ID)
continues where it stopped. Token expiry mid-stream is handled here: refresh, then resume.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dashboard import views
from dashboard.backend import SessionEnded
from dashboard.errors import ServiceError, decode
from dashboard.listing import ListQuery
from dashboard.sessions import Session
from dashboard.web import Parts, current_session, parts
from payments.transaction.v1 import transaction_pb2 as pb

log = logging.getLogger("dashboard")
KEEPALIVE_SECONDS = 15.0
MAX_RESUME_TOKEN = 256
Code = grpc.StatusCode


class _End:
    """The stream is over; `retry_ms` tells the browser when to try again."""

    def __init__(self, words: str, retry_ms: int):
        self.words, self.retry_ms = words, retry_ms


class _Live:
    """The watch is live from `resume_token` on (the server's initial metadata)."""

    def __init__(self, resume_token: str):
        self.resume_token = resume_token


Item = pb.TransactionChange | str | _End | _Live
RESUME_TOKEN_HEADER = "x-resume-token"  # initial metadata of a watch: where it starts


def _sse(event: str, html: str, event_id: str = "") -> str:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id else [])
    lines += [f"data: {line}" for line in html.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


async def _pump(p: Parts, session: Session, user_id: str, resume: str, out: asyncio.Queue[Item]) -> None:
    """Watch, and keep watching across token renewals and brief outages, until told to stop."""
    backoff = 0.5
    while True:
        call = None
        try:
            token = await p.backend.token(session)
            call = p.backend.watch(token, pb.WatchTransactionsRequest(resume_token=resume, user_id=user_id))
            started = dict(await call.initial_metadata() or ())
            if isinstance(started.get(RESUME_TOKEN_HEADER), str):
                resume = started[RESUME_TOKEN_HEADER]
                await out.put(_Live(resume))
            async for change in call:
                backoff = 0.5
                resume = change.resume_token
                await out.put(change)
            failure = ServiceError(Code.UNAVAILABLE, "stream ended")
        except SessionEnded:
            await out.put(_End("Your session has ended. Log in again.", 600_000))
            return
        except ServiceError as err:  # the auth service was away while renewing the token
            failure = err
        except grpc.RpcError as err:
            failure = decode(err)
        finally:
            if call is not None:
                call.cancel()  # the browser left (this task was cancelled) or the stream failed
        resume = failure.metadata.get("resume_token") or resume
        if failure.code == Code.UNAUTHENTICATED:
            try:
                await p.backend.token(session, force=True)
            except SessionEnded:
                await out.put(_End("Your session has ended. Log in again.", 600_000))
                return
            except ServiceError:
                await asyncio.sleep(backoff)
            continue
        if failure.code in (Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION) and resume:
            # a resume token of another filter, or older than the server keeps: start afresh
            resume = ""
            if failure.reason == "RESUME_TOKEN_EXPIRED":
                await out.put(failure.words)
            continue
        if failure.code == Code.UNIMPLEMENTED or failure.reason == "WATCH_DISABLED":
            await out.put(_End("Live updates are not available from this transaction service.", 600_000))
            return
        if failure.code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.CANCELLED):
            await out.put("Reconnecting to live updates…")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        retry_ms = int((failure.retry_delay or 30.0) * 1000)
        await out.put(_End(failure.words, retry_ms))
        return


async def _relay(
    request: Request, session: Session, query: ListQuery, owner: str, watch_user: str, resume: str
) -> AsyncIterator[str]:
    p = parts(request)
    locale = p.settings.dashboard_locale
    templates = p.templates
    queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=256)
    pump = asyncio.create_task(_pump(p, session, watch_user, resume, queue))
    yield "retry: 3000\n\n"
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                if pump.done():  # it stopped without saying why (a bug): let the browser reconnect
                    yield "retry: 5000\n\n"
                    return
                item = ""
            if not p.sessions.alive(session):
                yield _sse("ended", "Your session has ended. Log in again.") + "retry: 600000\n\n"
                return
            if item == "":
                yield ": keepalive\n\n"
            elif isinstance(item, str):
                yield _sse("status", item)
            elif isinstance(item, _Live):  # an id-only message: a reconnect resumes from here
                yield f"id: {item.resume_token}\n" + _sse("status", "Live updates are on.")
            elif isinstance(item, _End):
                yield f"retry: {item.retry_ms}\n\n" + _sse("ended", item.words)
                return
            else:
                tx = views.transaction(item.transaction, locale)
                context = {"tx": tx, "created": not item.old_status, "owner": owner, "user": session.user}
                if query.matches(item.transaction, owner):
                    yield _sse("row", templates.get_template("_row.html").render(context))
                context["change"] = views.change_event(item)
                activity = templates.get_template("_activity.html").render(context)
                yield _sse("activity", activity, item.resume_token)
    finally:
        pump.cancel()


async def live(request: Request) -> Response:
    """GET /live?<list filter>: the event stream of the list page (204 without a session: stop)."""
    session = current_session(request)
    if session is None:
        return Response(status_code=204)  # an EventSource does not reconnect after a 204
    query, _ = ListQuery.parse(request.query_params, is_admin=session.user.is_admin)
    owner = query.user_id or session.user.id
    # admins watch every user's changes (the activity panel) unless they picked one user
    watch_user = query.user_id if session.user.is_admin else ""
    resume = request.headers.get("last-event-id") or request.query_params.get("resume", "")
    stream = _relay(request, session, query, owner, watch_user, resume[:MAX_RESUME_TOKEN])
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
