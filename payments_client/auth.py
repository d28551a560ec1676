"""Typed helpers over AuthService: register, log in, ask who the token belongs to."""

from __future__ import annotations

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_client import retry
from payments_client.credentials import Login, TokenSource
from payments_client.metadata import call_with_token


class AuthClient:
    """AuthService over one channel; every call has a deadline of `timeout` seconds."""

    def __init__(
        self, channel: grpc.Channel, *, timeout: float = 5.0, policy: retry.RetryPolicy | None = None
    ):
        self._channel = channel
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._timeout = timeout
        self._policy = policy or retry.RetryPolicy()

    def __repr__(self) -> str:
        return f"AuthClient(timeout={self._timeout})"

    def register(self, email: str, password: str, full_name: str = "") -> auth_pb2.User:
        """Create a user. Tried once: a lost reply may hide a created account (EMAIL_TAKEN next time)."""
        request = auth_pb2.RegisterRequest(email=email, password=password, full_name=full_name)
        reply = retry.call(
            lambda left: self._stub.Register(request, timeout=left),
            idempotent=False,
            timeout=self._timeout,
            policy=self._policy,
        )
        user: auth_pb2.User = reply.user
        return user

    def login(self, credentials: Login, *, refresh_margin_seconds: float = 60.0) -> TokenSource:
        """Log in now (so bad credentials fail here) and return a source that keeps the token fresh."""
        tokens = TokenSource(
            self._channel,
            credentials,
            refresh_margin_seconds=refresh_margin_seconds,
            timeout=self._timeout,
            policy=self._policy,
        )
        tokens.access_token()
        return tokens

    def current_user(self, tokens: TokenSource) -> auth_pb2.User:
        """The user the tokens belong to (service principals have no user: UNAUTHENTICATED)."""
        reply = call_with_token(
            tokens,
            lambda md, left: self._stub.GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(), metadata=md, timeout=left
            ),
            idempotent=True,
            timeout=self._timeout,
            policy=self._policy,
        )
        user: auth_pb2.User = reply.user
        return user
