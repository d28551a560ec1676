"""Logging in and out: the auth service checks the password, the tokens stay on the server."""

from __future__ import annotations

import logging

import grpc
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from dashboard.errors import ServiceError
from dashboard.security import LOGIN_TOKEN_SECONDS, login_token, login_token_ok, new_login_nonce
from dashboard.web import (
    checked_form,
    clear_session_cookie,
    current_session,
    parts,
    render,
    safe_next,
    set_session_cookie,
)

log = logging.getLogger("dashboard")
LOGIN_REFUSED = "The email or password is not right."


def _login_page(request: Request, *, error: str = "", email: str = "", status_code: int = 200) -> Response:
    p = parts(request)
    nonce = new_login_nonce()
    context = {
        "login_token": login_token(p.signer, nonce),
        "next": safe_next(request.query_params.get("next")),
        "error": error,
        "email": email,
    }
    response = render(request, "login.html", context, session=None, status_code=status_code)
    response.set_cookie(
        p.login_cookie_name,
        nonce,
        max_age=LOGIN_TOKEN_SECONDS,
        httponly=True,
        secure=p.settings.secure_cookies,
        samesite="strict",
        path="/",
    )
    return response


async def login_page(request: Request) -> Response:
    """GET /login: the form (or straight on, when already logged in)."""
    if current_session(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_page(request)


async def log_in(request: Request) -> Response:
    """POST /login: check the form's token, log in with the auth service, start a session."""
    p = parts(request)
    form = await request.form()
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    token = str(form.get("login_token", ""))
    if not login_token_ok(p.signer, token, request.cookies.get(p.login_cookie_name)):
        return _login_page(request, error="The form expired. Please try again.", email=email, status_code=403)
    if not email or not password:
        return _login_page(request, error="Enter your email and password.", email=email, status_code=400)
    try:
        user, tokens = await p.backend.log_in(email, password, request.client.host if request.client else "")
    except ServiceError as err:
        if err.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
            message = LOGIN_REFUSED
        else:
            message = err.words
        status = 429 if err.code == grpc.StatusCode.RESOURCE_EXHAUSTED else 401
        return _login_page(request, error=message, email=email, status_code=status)
    session = p.sessions.create(user, tokens.access_token, tokens.refresh_token, tokens.expires_in)
    log.info("session started", extra={"user_id": user.id})
    response = RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)
    set_session_cookie(response, p, session)
    # a __Host- cookie is only replaced (here: expired) by one that is Secure too
    response.delete_cookie(
        p.login_cookie_name, path="/", secure=p.settings.secure_cookies, httponly=True, samesite="strict"
    )
    return response


async def log_out(request: Request) -> Response:
    """POST /logout: revoke the refresh token, forget the session, clear the cookie."""
    p = parts(request)
    session = current_session(request)
    response = RedirectResponse("/login", status_code=303)
    if session is not None:
        await checked_form(request, session)
        p.sessions.remove(session.id)
        await p.backend.revoke(session)
    clear_session_cookie(response, p)
    return response
