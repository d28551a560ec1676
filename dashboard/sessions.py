"""Server-side sessions: the browser holds only a signed reference, never a token.

The access and refresh tokens stay in this process's memory. A session ends after
`idle_seconds` without a request, after `max_seconds` in all, on logout, or when its refresh
token stops working; ended sessions are handed back by `sweep()` so their refresh tokens can be
revoked. Memory only: a restart logs everyone out, and several replicas need sticky sessions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class User:
    """Who is logged in, as the auth service described them at login."""

    id: str
    email: str
    full_name: str
    is_admin: bool


@dataclass(eq=False)
class Session:
    """One logged-in browser."""

    id: str = field(repr=False)
    user: User
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: float  # monotonic clock
    csrf_token: str = field(repr=False)
    created_at: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), shown once
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)  # one refresh at a time

    def flash(self, kind: str, text: str) -> None:
        """Keep a message for the next page this session sees."""
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        """The pending messages, removed."""
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """Sessions by id, oldest first, with idle and absolute expiry and a size cap."""

    def __init__(
        self,
        *,
        idle_seconds: float,
        max_seconds: float,
        max_sessions: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._idle = idle_seconds
        self._max = max_seconds
        self._cap = max_sessions
        self._clock = clock
        self._ended: list[Session] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: User, access_token: str, refresh_token: str, expires_in: float) -> Session:
        """A new session (always a new id: logging in never reuses a reference the browser had)."""
        now = self._clock()
        while len(self._sessions) >= self._cap:
            _, oldest = self._sessions.popitem(last=False)
            self._ended.append(oldest)
        session = Session(
            id=secrets.token_urlsafe(32),
            user=user,
            access_token=access_token,
            refresh_token=refresh_token,
            access_expires_at=now + expires_in,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen=now,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, its idle clock restarted; None if unknown or ended."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self._ended.append(self._sessions.pop(session_id))
            return None
        session.last_seen = now
        return session

    def alive(self, session: Session) -> bool:
        """True while `session` is live, without counting as activity (a live stream is not a click)."""
        return self._sessions.get(session.id) is session and not self._expired(session, self._clock())

    def remove(self, session_id: str) -> Session | None:
        """End a session now (logout); returns it so its refresh token can be revoked."""
        return self._sessions.pop(session_id, None)

    def sweep(self) -> list[Session]:
        """Drop every expired session; returns them with those ended earlier by expiry or the cap."""
        now = self._clock()
        for session_id in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            self._ended.append(self._sessions.pop(session_id))
        ended, self._ended = self._ended, []
        return ended

    def drain(self) -> list[Session]:
        """End every session (the process stops: its memory, and so every session, goes)."""
        ended = self.sweep() + list(self._sessions.values())
        self._sessions.clear()
        return ended

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self._idle or now - session.created_at > self._max


class Signer:
    """HMAC-SHA256 of short strings under the session secret, for cookies and login CSRF tokens."""

    def __init__(self, secret: bytes):
        self._secret = secret

    def sign(self, purpose: str, value: str) -> str:
        """`value.signature`, where the signature also covers what the value is for."""
        return f"{value}.{self._mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str) -> str | None:
        """The value if `signed` came from `sign(purpose, ...)`, else None."""
        value, dot, signature = signed.rpartition(".")
        if not dot or not hmac.compare_digest(signature, self._mac(purpose, value)):
            return None
        return value

    def _mac(self, purpose: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
