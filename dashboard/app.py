"""The Starlette application: routes, security headers, error pages and the session sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboard import auth_routes, live, pages, tx_routes
from dashboard.backend import Backend, SessionEnded
from dashboard.errors import ServiceError
from dashboard.security import SecurityHeaders
from dashboard.sessions import SessionStore, Signer
from dashboard.settings import DashboardSettings
from dashboard.web import (
    LoginRequired,
    Parts,
    clear_session_cookie,
    current_session,
    login_redirect,
    not_found,
    parts,
    render,
    templates_environment,
)

log = logging.getLogger("dashboard")
STATIC = Path(__file__).parent / "static"
SWEEP_SECONDS = 30.0
SHUTDOWN_REVOKE_SECONDS = 2.0


async def _sweep(p: Parts) -> None:
    """Every few seconds: drop expired sessions and revoke their refresh tokens."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        for session in p.sessions.sweep():
            try:
                await p.backend.revoke(session)
            except Exception:  # the sweeper must outlive any one failure
                log.exception("revoking an ended session failed")


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return login_redirect(request, exc.next_path)


async def _session_ended(request: Request, _exc: Exception) -> Response:
    p = parts(request)
    session = current_session(request)
    if session is not None:
        p.sessions.remove(session.id)
    response = login_redirect(request, "/transactions")
    clear_session_cookie(response, p)
    return response


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    log.warning("service call failed", extra={"code": exc.code.name, "reason": exc.reason})
    context = {"title": "The payment service could not answer", "words": exc.words}
    return render(request, "error.html", context, session=current_session(request), status_code=503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    session = current_session(request)
    if exc.status_code == 404:
        return not_found(request, session)
    if exc.status_code == 403:
        context = {
            "title": "This form was refused",
            "words": "It did not carry this session's security token (it may have expired, or come"
            " from another site). Open the page again and retry.",
        }
    else:
        context = {"title": f"Request refused ({exc.status_code})", "words": str(exc.detail)}
    return render(request, "error.html", context, session=session, status_code=exc.status_code)


def build_app(settings: DashboardSettings, backend: Backend | None = None) -> Starlette:
    """The dashboard as an ASGI app (the channels open when it starts serving)."""
    p = Parts(
        settings=settings,
        backend=backend or Backend(settings),
        sessions=SessionStore(
            idle_seconds=settings.dashboard_session_idle_seconds,
            max_seconds=settings.dashboard_session_max_seconds,
            max_sessions=settings.dashboard_max_sessions,
        ),
        signer=Signer(settings.session_secret),
        templates=templates_environment(settings.dashboard_locale),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await p.backend.open()
        sweeper = asyncio.create_task(_sweep(p))
        try:
            yield
        finally:
            sweeper.cancel()
            # the sessions die with the process: end their refresh-token families too (briefly)
            revokes = [p.backend.revoke(session) for session in p.sessions.drain()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*revokes), timeout=SHUTDOWN_REVOKE_SECONDS)
            await p.backend.close()

    routes = [
        Route("/", pages.home),
        Route("/login", auth_routes.login_page, methods=["GET"]),
        Route("/login", auth_routes.log_in, methods=["POST"]),
        Route("/logout", auth_routes.log_out, methods=["POST"]),
        Route("/transactions", tx_routes.list_page),
        Route("/transactions/{tx_id}", tx_routes.detail_page),
        Route("/transactions/{tx_id}/cancel", tx_routes.cancel, methods=["POST"]),
        Route("/transactions/{tx_id}/refund", tx_routes.refund, methods=["POST"]),
        Route("/summary", pages.summary_page),
        Route("/live", live.live),
        Route("/healthz", pages.healthz),
        Route("/readyz", pages.readyz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            LoginRequired: _login_required,
            SessionEnded: _session_ended,
            ServiceError: _service_error,
            HTTPException: _http_error,
        },
    )
    app.state.parts = p
    app.add_middleware(SecurityHeaders, hsts=settings.serves_tls)
    return app
