"""AuthService RPCs: translate protobuf messages to use-case calls and back; nothing else."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from auth_service.keys import KeyRing
from auth_service.service import AuthService, Tokens, UserView
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common.errors import InvalidArgument
from payments_common.interceptors import current_principal

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


def peer_address(context: grpc.ServicerContext) -> str:
    """The caller's address without the port (`ipv4:1.2.3.4:5678` -> `ipv4:1.2.3.4`)."""
    peer: str = context.peer() or "unknown"
    return peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """The payments.auth.v1.AuthService endpoints."""

    def __init__(self, service: AuthService, keys: KeyRing):
        self._service = service
        self._keys = keys

    def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.ServicerContext
    ) -> auth_pb2.RegisterResponse:
        view = self._service.register(request.email, request.password, request.full_name)
        return auth_pb2.RegisterResponse(user=_user(view))

    def Login(self, request: auth_pb2.LoginRequest, context: grpc.ServicerContext) -> auth_pb2.LoginResponse:
        kind = request.WhichOneof("credentials")
        peer = peer_address(context)
        if kind == "password":
            tokens = self._service.login_password(request.password.email, request.password.password, peer)
        elif kind == "client":
            tokens = self._service.login_client(request.client.client_id, request.client.client_secret, peer)
        else:
            raise InvalidArgument([("credentials", "set either password or client credentials")])
        return auth_pb2.LoginResponse(tokens=_tokens(tokens))

    def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: grpc.ServicerContext
    ) -> auth_pb2.RefreshTokenResponse:
        if not request.refresh_token:
            raise InvalidArgument([("refresh_token", "is required")])
        return auth_pb2.RefreshTokenResponse(tokens=_tokens(self._service.refresh(request.refresh_token)))

    def RevokeToken(
        self, request: auth_pb2.RevokeTokenRequest, context: grpc.ServicerContext
    ) -> auth_pb2.RevokeTokenResponse:
        if not request.refresh_token:
            raise InvalidArgument([("refresh_token", "is required")])
        self._service.revoke(request.refresh_token)
        return auth_pb2.RevokeTokenResponse()

    def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: grpc.ServicerContext
    ) -> auth_pb2.GetCurrentUserResponse:
        return auth_pb2.GetCurrentUserResponse(user=_user(self._service.current_user(current_principal())))

    def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.ServicerContext
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(jwks_json=self._keys.jwks())
