"""Who the client is, and the tokens that prove it, kept fresh without the caller noticing."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_client import retry
from payments_client.errors import PaymentsError

log = logging.getLogger("payments_client")


@dataclass(frozen=True)
class UserLogin:
    """A person's email and password (a refresh token keeps the session going)."""

    email: str
    password: str = field(repr=False)

    def request(self) -> auth_pb2.LoginRequest:
        """The Login request for these credentials."""
        return auth_pb2.LoginRequest(
            password=auth_pb2.PasswordCredentials(email=self.email, password=self.password)
        )


@dataclass(frozen=True)
class ServiceLogin:
    """A service principal's client credentials; it simply logs in again near expiry."""

    client_id: str
    client_secret: str = field(repr=False)

    def request(self) -> auth_pb2.LoginRequest:
        """The Login request for these credentials."""
        return auth_pb2.LoginRequest(
            client=auth_pb2.ClientCredentials(client_id=self.client_id, client_secret=self.client_secret)
        )


Login = UserLogin | ServiceLogin


@dataclass(frozen=True)
class _Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # on the monotonic clock, measured from before the request was sent
    scope: str


class TokenSource:
    """Holds one principal's tokens and renews them shortly before the access token expires.

    Renewal happens under a lock: a refresh token is single use, and two
    threads spending it at once would trip the server's reuse detection and
    revoke the whole session. If a refresh fails (expired, revoked, server
    restarted with new state) the source logs in again with its credentials.
    """

    def __init__(
        self,
        auth_channel: grpc.Channel,
        login: Login,
        *,
        refresh_margin_seconds: float = 60.0,
        timeout: float = 5.0,
        policy: retry.RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._stub = auth_pb2_grpc.AuthServiceStub(auth_channel)
        self._login = login
        self._margin = refresh_margin_seconds
        self._timeout = timeout
        self._policy = policy or retry.RetryPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: _Tokens | None = None

    def __repr__(self) -> str:
        return f"TokenSource({self._login!r}, logged_in={self._tokens is not None})"

    @property
    def scope(self) -> str:
        """Scopes of the current access token (space separated); empty before the first login."""
        return self._tokens.scope if self._tokens else ""

    def access_token(self) -> str:
        """A token valid for at least the refresh margin (or as long as the server grants)."""
        with self._lock:
            tokens = self._tokens
            if tokens is None or self._clock() >= tokens.expires_at - self._margin:
                tokens = self._tokens = self._renew(tokens)
            return tokens.access_token

    def invalidate(self, access_token: str) -> None:
        """Forget `access_token` after the server refused it; the next call renews.

        Comparing tokens means N threads refused at once cause one renewal, not N.
        """
        with self._lock:
            if self._tokens is not None and self._tokens.access_token == access_token:
                self._tokens = _Tokens("", self._tokens.refresh_token, -math.inf, self._tokens.scope)

    def logout(self) -> None:
        """End the refresh-token family on the server and forget every token."""
        with self._lock:
            tokens, self._tokens = self._tokens, None
        if tokens is not None and tokens.refresh_token:
            request = auth_pb2.RevokeTokenRequest(refresh_token=tokens.refresh_token)
            retry.call(
                lambda left: self._stub.RevokeToken(request, timeout=left),
                idempotent=True,  # revoking twice is OK by contract
                timeout=self._timeout,
                policy=self._policy,
            )

    def _renew(self, current: _Tokens | None) -> _Tokens:
        if current is not None and current.refresh_token:
            try:
                return self._refresh(current.refresh_token)
            except PaymentsError as err:
                log.info("token refresh failed (%s); logging in again", err.code().name)
        return self._log_in()

    def _refresh(self, refresh_token: str) -> _Tokens:
        started = self._clock()
        request = auth_pb2.RefreshTokenRequest(refresh_token=refresh_token)
        reply = retry.call(
            lambda left: self._stub.RefreshToken(request, timeout=left),
            idempotent=False,  # single use: a second delivery would look like token theft
            timeout=self._timeout,
            policy=self._policy,
        )
        return self._tokens_from(reply.tokens, started)

    def _log_in(self) -> _Tokens:
        started = self._clock()
        request = self._login.request()
        reply = retry.call(
            lambda left: self._stub.Login(request, timeout=left),
            idempotent=True,  # a duplicate login only leaves an unused session that expires
            timeout=self._timeout,
            policy=self._policy,
        )
        return self._tokens_from(reply.tokens, started)

    @staticmethod
    def _tokens_from(pair: auth_pb2.TokenPair, started: float) -> _Tokens:
        return _Tokens(pair.access_token, pair.refresh_token, started + pair.expires_in, pair.scope)
