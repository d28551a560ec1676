"""What every response carries (a strict CSP and friends) and how forms prove they are ours.

CSRF: each session has a random token, sent in a hidden field of every form and, for htmx
requests, in the `X-CSRF-Token` header (htmx adds it from `hx-headers` on <body>); a POST without
the session's token is refused, and so is one whose Origin is another site. The login form has
no session yet, so its token is a signed double submit: a random nonce in a short-lived cookie
and the same nonce, signed and timestamped, in the form.
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.sessions import Signer

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_TOKEN_SECONDS = 3600


class SecurityHeaders:
    """ASGI middleware adding the security headers (pure ASGI, so streamed responses stay streamed)."""

    def __init__(self, app: ASGIApp, *, hsts: bool):
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                # URLs carry page tokens and user ids: never sent to another site. (no-referrer would
                # also make Chromium send `Origin: null` with our own forms, which the CSRF check refuses)
                headers["Referrer-Policy"] = "same-origin"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Cross-Origin-Resource-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
                if not static:  # pages hold someone's payments: never keep them in a shared cache
                    headers.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # "null" is an opaque origin (sandboxed frame, data: URL): refuse
    return urlsplit(origin).netloc == request.headers.get("host", "")


def csrf_ok(request: Request, expected: str, submitted: str | None) -> bool:
    """The token came with the form (or the htmx header) and matches the session's."""
    token = submitted or request.headers.get(CSRF_HEADER) or ""
    return same_origin(request) and bool(token) and hmac.compare_digest(token, expected)


def new_login_nonce() -> str:
    """The random half of a login form's double submit (goes into a cookie)."""
    return secrets.token_urlsafe(24)


def login_token(signer: Signer, nonce: str, now: float | None = None) -> str:
    """The login form's token: the cookie's nonce and the time, signed."""
    issued = int(time.time() if now is None else now)
    return signer.sign("login", f"{nonce}|{issued}")


def login_token_ok(signer: Signer, token: str, nonce: str | None, now: float | None = None) -> bool:
    """The form's token was made for this browser's nonce, in the last hour."""
    value = signer.unsign("login", token) if nonce else None
    if value is None:
        return False
    form_nonce, _, issued = value.partition("|")
    current = time.time() if now is None else now
    fresh = issued.isdigit() and 0 <= current - int(issued) <= LOGIN_TOKEN_SECONDS
    return fresh and nonce is not None and hmac.compare_digest(form_nonce, nonce)
