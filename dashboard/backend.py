"""The two services over gRPC (asyncio channels), called with the session's own token.

Every call carries `authorization: Bearer <the session's access token>`, an `x-request-id` and
a deadline. The access token is renewed with RefreshToken shortly before it expires and once more
when a service answers UNAUTHENTICATED (the server refuses those before doing any work, so one
repeat is safe for every call); a refresh token that no longer works ends the session.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dashboard.errors import ServiceError, decode
from dashboard.sessions import Session, User
from dashboard.settings import DashboardSettings
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from payments_client.channel import TlsConfig, channel_options

log = logging.getLogger("dashboard")
T = TypeVar("T")
AUTH_SERVICE = "payments.auth.v1.AuthService"
TX_SERVICE = "payments.transaction.v1.TransactionService"


class SessionEnded(Exception):
    """The session's tokens no longer work (refresh refused or revoked): log in again."""


def _channel(address: str, tls: TlsConfig | None) -> grpc.aio.Channel:
    # the client package's options: quick reconnects, round robin over a "dns:///" name's addresses
    options = channel_options(address)
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    credentials = grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain)
    return grpc.aio.secure_channel(address, credentials, options=options)


class Backend:
    """Both services for every session of this process (the channels are shared)."""

    def __init__(self, settings: DashboardSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._timeout = settings.dashboard_grpc_timeout_seconds
        self._clock = clock
        self._channels: list[grpc.aio.Channel] = []
        self.auth: Any = None
        self.tx: Any = None
        self._health: list[tuple[Any, str]] = []

    async def open(self) -> None:
        """Open the channels (inside the running event loop)."""
        s = self._settings
        tls = None
        if s.dashboard_grpc_ca_file is not None:
            tls = TlsConfig.from_files(
                s.dashboard_grpc_ca_file, s.dashboard_grpc_client_cert_file, s.dashboard_grpc_client_key_file
            )
        auth = _channel(s.auth_service_addr, tls)
        tx = _channel(s.transaction_service_addr, tls)
        self._channels = [auth, tx]
        self.auth = auth_pb2_grpc.AuthServiceStub(auth)
        self.tx = transaction_pb2_grpc.TransactionServiceStub(tx)
        self._health = [
            (health_pb2_grpc.HealthStub(auth), AUTH_SERVICE),
            (health_pb2_grpc.HealthStub(tx), TX_SERVICE),
        ]

    async def close(self) -> None:
        """Close the channels; calls still running end with CANCELLED."""
        for channel in self._channels:
            await channel.close(grace=1.0)

    async def ready(self) -> bool:
        """True when both services report SERVING."""
        for stub, service in self._health:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
            except grpc.RpcError:
                return False
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
        return True

    async def log_in(self, email: str, password: str, client: str = "") -> tuple[User, auth_pb2.TokenPair]:
        """Password login, then who the user is; ServiceError when refused.

        `client` (the browser's address) goes as `x-forwarded-for`: an auth service that trusts
        the dashboard (`TRUSTED_PROXIES`) counts login failures per person, not per dashboard.
        """
        request = auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
        forwarded = (("x-forwarded-for", client),) if client else ()
        try:
            tokens: auth_pb2.TokenPair = (
                await self.auth.Login(request, metadata=forwarded, timeout=self._timeout)
            ).tokens
            reply = await self.auth.GetCurrentUser(
                auth_pb2.GetCurrentUserRequest(),
                metadata=self._metadata(tokens.access_token),
                timeout=self._timeout,
            )
        except grpc.RpcError as err:
            raise decode(err) from None
        user = reply.user
        is_admin = auth_pb2.ROLE_ADMIN in user.roles
        return User(user.id, user.email, user.full_name, is_admin), tokens

    async def revoke(self, session: Session) -> None:
        """End the session's refresh-token family on the auth service (best effort)."""
        try:
            await self.auth.RevokeToken(
                auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token), timeout=self._timeout
            )
        except grpc.RpcError as err:
            log.info("revoking a session's refresh token failed: %s", decode(err).code.name)

    async def token(self, session: Session, *, force: bool = False) -> str:
        """The session's access token, renewed first when it is about to expire (or `force`)."""
        used = session.access_token
        async with session.lock:
            if session.access_token != used:  # another request renewed it meanwhile
                return session.access_token
            if not force and self._clock() < session.access_expires_at - 30.0:
                return session.access_token
            started = self._clock()
            request = auth_pb2.RefreshTokenRequest(refresh_token=session.refresh_token)
            try:
                pair = (await self.auth.RefreshToken(request, timeout=self._timeout)).tokens
            except grpc.RpcError as err:
                failure = decode(err)
                if failure.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise failure from None  # the auth service is away: the session may still be good
                raise SessionEnded(failure.code.name) from None
            session.access_token, session.refresh_token = pair.access_token, pair.refresh_token
            session.access_expires_at = started + pair.expires_in
            return session.access_token

    async def call(self, session: Session, rpc: Callable[..., Awaitable[T]], request: Any) -> T:
        """`rpc(request)` as the session's user; ServiceError on failure, SessionEnded if logged out."""
        for attempt in (1, 2):
            token = await self.token(session, force=attempt == 2)
            try:
                return await rpc(request, metadata=self._metadata(token), timeout=self._timeout)
            except grpc.RpcError as err:
                failure = decode(err)
            if failure.code != grpc.StatusCode.UNAUTHENTICATED:
                raise failure
        raise SessionEnded(failure.reason or failure.message)

    def watch(self, token: str, request: pb.WatchTransactionsRequest) -> Any:
        """The WatchTransactions stream (no deadline: it runs until cancelled or ended by the server)."""
        return self.tx.WatchTransactions(request, metadata=self._metadata(token))

    @staticmethod
    def _metadata(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"), ("x-request-id", uuid.uuid4().hex))


__all__ = ["Backend", "ServiceError", "SessionEnded"]
