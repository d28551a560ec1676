"""AuthService RPCs: translate protobuf messages to use-case calls (on the database threads) and back."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any
from urllib.parse import unquote  # grpc writes an IPv6 peer as ipv6:%5B::1%5D:port

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from auth_service.keys import KeyRing
from auth_service.service import AuthService
from auth_service.views import Tokens, UserView
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common.errors import InvalidArgument
from payments_common.interceptors import current_principal
from payments_common.server import Offload

FORWARDED_FOR = "x-forwarded-for"

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
# callable without an access token (the rest need one)
PUBLIC_METHODS = frozenset(
    f"/{SERVICE_NAME}/{m}" for m in ("Register", "Login", "RefreshToken", "RevokeToken", "GetJwks")
)
Context = grpc.aio.ServicerContext
ROLE_TO_PROTO = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN}


def _user(view: UserView) -> auth_pb2.User:
    created = Timestamp()
    created.FromDatetime(view.created_at)
    return auth_pb2.User(
        id=str(view.id),
        email=view.email,
        full_name=view.full_name,
        roles=[ROLE_TO_PROTO[r] for r in view.roles],
        created_at=created,
    )


def _tokens(tokens: Tokens) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(
        access_token=tokens.access_token,
        token_type="Bearer",
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        refresh_expires_in=tokens.refresh_expires_in,
        scope=tokens.scope,
    )


def peer_address(context: Context[Any, Any]) -> str:
    """The caller's address without the port (`ipv4:1.2.3.4:5678` -> `ipv4:1.2.3.4`)."""
    peer: str = context.peer() or "unknown"
    return peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer


class ClientAddress:
    """The address a call's limits count: the peer's, or the one a trusted proxy forwards.

    A peer inside `TRUSTED_PROXIES` (the dashboard, which logs people in on their behalf) may say
    whose request it passes on in `x-forwarded-for`; its last entry (what that proxy saw) counts
    instead of the proxy's own address, so one person's failures do not lock everyone out. Anyone
    else's header is ignored: it would let a caller pick the address its limits count.
    """

    def __init__(self, trusted: Sequence[IPv4Network | IPv6Network] = ()):
        self._trusted = tuple(trusted)

    def __call__(self, context: Context[Any, Any]) -> str:
        peer = peer_address(context)
        if not self._trusted or not _within(unquote(peer.partition(":")[2]).strip("[]"), self._trusted):
            return peer
        forwarded = dict(context.invocation_metadata() or ()).get(FORWARDED_FOR, "")
        try:
            client = ip_address(str(forwarded).split(",")[-1].strip())
        except ValueError:
            return peer
        return f"ipv4:{client}" if client.version == 4 else f"ipv6:[{client}]"


def _within(address: str, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """The payments.auth.v1.AuthService endpoints."""

    def __init__(
        self, service: AuthService, keys: KeyRing, offload: Offload, client: ClientAddress | None = None
    ):
        self._service = service
        self._keys = keys
        self._offload = offload
        self._client = client or ClientAddress()

    async def Register(
        self,
        request: auth_pb2.RegisterRequest,
        context: Context[auth_pb2.RegisterRequest, auth_pb2.RegisterResponse],
    ) -> auth_pb2.RegisterResponse:
        view = await self._offload(
            self._service.register,
            request.email,
            request.password,
            request.full_name,
            peer=self._client(context),
        )
        return auth_pb2.RegisterResponse(user=_user(view))

    async def Login(
        self, request: auth_pb2.LoginRequest, context: Context[auth_pb2.LoginRequest, auth_pb2.LoginResponse]
    ) -> auth_pb2.LoginResponse:
        kind = request.WhichOneof("credentials")
        peer = self._client(context)
        if kind == "password":
            tokens = await self._offload(
                self._service.logins.password, request.password.email, request.password.password, peer
            )
        elif kind == "client":
            tokens = await self._offload(
                self._service.logins.client, request.client.client_id, request.client.client_secret, peer
            )
        else:
            raise InvalidArgument([("credentials", "set either password or client credentials")])
        return auth_pb2.LoginResponse(tokens=_tokens(tokens))

    async def RefreshToken(
        self,
        request: auth_pb2.RefreshTokenRequest,
        context: Context[auth_pb2.RefreshTokenRequest, auth_pb2.RefreshTokenResponse],
    ) -> auth_pb2.RefreshTokenResponse:
        if not request.refresh_token:
            raise InvalidArgument([("refresh_token", "is required")])
        tokens = await self._offload(self._service.refresh, request.refresh_token)
        return auth_pb2.RefreshTokenResponse(tokens=_tokens(tokens))

    async def RevokeToken(
        self,
        request: auth_pb2.RevokeTokenRequest,
        context: Context[auth_pb2.RevokeTokenRequest, auth_pb2.RevokeTokenResponse],
    ) -> auth_pb2.RevokeTokenResponse:
        if not request.refresh_token:
            raise InvalidArgument([("refresh_token", "is required")])
        await self._offload(self._service.revoke, request.refresh_token)
        return auth_pb2.RevokeTokenResponse()

    async def GetCurrentUser(
        self,
        request: auth_pb2.GetCurrentUserRequest,
        context: Context[auth_pb2.GetCurrentUserRequest, auth_pb2.GetCurrentUserResponse],
    ) -> auth_pb2.GetCurrentUserResponse:
        view = await self._offload(self._service.current_user, current_principal())
        return auth_pb2.GetCurrentUserResponse(user=_user(view))

    async def GetJwks(
        self,
        request: auth_pb2.GetJwksRequest,
        context: Context[auth_pb2.GetJwksRequest, auth_pb2.GetJwksResponse],
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(jwks_json=await self._offload(self._keys.jwks))
