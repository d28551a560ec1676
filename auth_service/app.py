"""Wiring: settings -> engine -> keys -> service -> servicer -> server."""

from __future__ import annotations

from sqlalchemy import Engine

from auth_service import keys as keymod
from auth_service.passwords import PasswordHasher
from auth_service.service import AuthService
from auth_service.servicer import AuthServicer
from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments_common import db, metrics
from payments_common.config import AuthSettings
from payments_common.interceptors import ServiceInterceptor
from payments_common.server import RunningServer, Service, start_server
from payments_common.tokens import CachedKeys, TokenVerifier

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
PUBLIC_METHODS = frozenset(
    f"/{SERVICE_NAME}/{m}" for m in ("Register", "Login", "RefreshToken", "RevokeToken", "GetJwks")
)


def hasher_for(settings: AuthSettings) -> PasswordHasher:
    """The password hasher with the configured Argon2id parameters."""
    return PasswordHasher(
        settings.password_time_cost, settings.password_memory_kib, settings.password_parallelism
    )


def build_service(settings: AuthSettings) -> tuple[AuthService, keymod.KeyRing, Engine]:
    """The use cases over a fresh engine (also used by the CLI commands)."""
    engine = db.engine_for(settings, "auth_service")
    keys = keymod.KeyRing(engine, settings)
    return AuthService(engine, settings, hasher_for(settings), keys), keys, engine


def start(settings: AuthSettings) -> RunningServer:
    """Start the auth service; the first signing key is created if none is active."""
    service, keys, engine = build_service(settings)
    if settings.algorithm != "HS256":
        keymod.ensure_key(engine, settings.algorithm)
    verifier = TokenVerifier(
        CachedKeys(keys.verification_keys, min_refresh_seconds=1.0),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        leeway=settings.token_leeway_seconds,
    )
    servicer = AuthServicer(service, keys)
    running = start_server(
        settings,
        settings.auth_port,
        [
            Service(
                SERVICE_NAME, lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
            )
        ],
        [ServiceInterceptor("auth.payments", verifier, PUBLIC_METHODS)],
        probe=lambda: db.ping(engine),
        metrics_port=settings.auth_metrics_port,
    )
    metrics.watch_pool(engine)
    running.closers.append(engine.dispose)
    return running
