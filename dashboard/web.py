"""What every route shares: the app's parts, the session of a request, pages, cookies and CSRF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dashboard import views
from dashboard.backend import Backend
from dashboard.money import format_minor
from dashboard.security import CSRF_FIELD, csrf_ok
from dashboard.sessions import Session, SessionStore, Signer
from dashboard.settings import DashboardSettings

TEMPLATES = Path(__file__).parent / "templates"
SESSION_PURPOSE = "session"


def templates_environment(locale: str) -> Environment:
    """Jinja with autoescaping on for every template (HTML and SVG alike)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["statuses"] = list(views.STATUSES.values())
    env.globals["types"] = list(views.TYPES.values())
    env.filters["money"] = lambda minor, currency: format_minor(minor, currency, locale)
    env.filters["label"] = lambda name: str(name).replace("_", " ").lower().capitalize()
    return env


@dataclass
class Parts:
    """The dashboard's long-lived parts, kept on `app.state.parts`."""

    settings: DashboardSettings
    backend: Backend
    sessions: SessionStore
    signer: Signer
    templates: Environment

    @property
    def cookie_name(self) -> str:
        """`__Host-` names need Secure, so the prefix is used exactly when cookies are Secure."""
        return "__Host-dashboard" if self.settings.secure_cookies else "dashboard_session"

    @property
    def login_cookie_name(self) -> str:
        """The login form's nonce cookie."""
        return "__Host-dashboard_login" if self.settings.secure_cookies else "dashboard_login"


def parts(request: Request) -> Parts:
    """The app's parts for this request."""
    found: Parts = request.app.state.parts
    return found


class LoginRequired(Exception):
    """No live session: the exception handler sends the browser to the login page."""

    def __init__(self, next_path: str = "/transactions"):
        super().__init__(next_path)
        self.next_path = next_path


def current_session(request: Request) -> Session | None:
    """The session the request's cookie refers to, if it is live."""
    p = parts(request)
    signed = request.cookies.get(p.cookie_name)
    session_id = p.signer.unsign(SESSION_PURPOSE, signed) if signed else None
    return p.sessions.get(session_id) if session_id else None


def require_session(request: Request) -> Session:
    """The request's live session, or LoginRequired."""
    session = current_session(request)
    if session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else "/transactions")
    return session


def safe_next(path: str | None) -> str:
    """A local path to go to after login (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/transactions"
    return path


def login_redirect(request: Request, next_path: str) -> Response:
    """To the login page, coming back to `next_path` afterwards (htmx: the whole page goes there)."""
    target = f"/login?next={quote(safe_next(next_path), safe='/')}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def is_htmx(request: Request) -> bool:
    """True for requests htmx made (it sends `HX-Request: true`)."""
    return request.headers.get("hx-request") == "true"


def render(
    request: Request, name: str, context: dict[str, Any], *, session: Session | None, status_code: int = 200
) -> HTMLResponse:
    """A page (or fragment) rendered with what every template may use."""
    p = parts(request)
    base = {
        "session": session,
        "user": session.user if session else None,
        "csrf_token": session.csrf_token if session else "",
        "flashes": session.take_flashes() if session and not is_htmx(request) else [],
        "path": request.url.path,
    }
    html = p.templates.get_template(name).render({**base, **context})
    if status_code >= 400 and is_htmx(request):
        # htmx swaps only 2xx answers: a whole page of bad news replaces the page's body instead
        headers = {"HX-Retarget": "body", "HX-Reswap": "innerHTML"}
        return HTMLResponse(html, headers=headers)
    return HTMLResponse(html, status_code=status_code)


def not_found(request: Request, session: Session | None) -> HTMLResponse:
    """The one not-found page: a missing transaction and another user's look exactly alike."""
    return render(request, "not_found.html", {}, session=session, status_code=404)


async def checked_form(request: Request, session: Session) -> FormData:
    """The POSTed form, after its CSRF token (field or htmx header) and Origin were checked."""
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    if not csrf_ok(request, session.csrf_token, submitted if isinstance(submitted, str) else None):
        raise HTTPException(403, "csrf")
    return form


def set_session_cookie(response: Response, p: Parts, session: Session) -> None:
    """The signed session reference: HttpOnly, SameSite=Strict, Secure over TLS, session-lived."""
    response.set_cookie(
        p.cookie_name,
        p.signer.sign(SESSION_PURPOSE, session.id),
        httponly=True,
        secure=p.settings.secure_cookies,
        samesite="strict",
        path="/",
    )


def clear_session_cookie(response: Response, p: Parts) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(
        p.cookie_name, path="/", secure=p.settings.secure_cookies, httponly=True, samesite="strict"
    )
