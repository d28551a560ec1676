"""Wiring: settings -> engine -> keys -> service -> servicer -> server."""

from __future__ import annotations

from auth_service import keys as keymod
from auth_service.passwords import PasswordHasher
from auth_service.service import AuthService
from auth_service.servicer import PUBLIC_METHODS, SERVICE_NAME, AuthServicer, ClientAddress
from payments.auth.v1 import auth_pb2_grpc
from payments_common import db, metrics
from payments_common.config import AuthSettings
from payments_common.interceptors import interceptors_for
from payments_common.server import Offload, RunningServer, Service, start_server
from payments_common.tokens import CachedKeys, TokenVerifier


def hasher_for(settings: AuthSettings) -> PasswordHasher:
    """The password hasher with the configured Argon2id parameters."""
    return PasswordHasher(
        settings.password_time_cost, settings.password_memory_kib, settings.password_parallelism
    )


def build_service(settings: AuthSettings) -> tuple[AuthService, keymod.KeyRing, db.Database]:
    """The use cases over a fresh database pool (also used by the CLI commands)."""
    database = db.database_for(settings, "auth_service")
    keys = keymod.KeyRing(database, settings)
    return AuthService(database, settings, hasher_for(settings), keys), keys, database


def start(settings: AuthSettings) -> RunningServer:
    """Start the auth service; the first signing key is created if none is active."""
    service, keys, database = build_service(settings)
    if settings.algorithm != "HS256":
        keymod.ensure_key(database, settings.algorithm)
    verifier = TokenVerifier(
        CachedKeys(keys.verification_keys, min_refresh_seconds=0),  # the ring caches them itself
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        leeway=settings.token_leeway_seconds,
    )
    offload = Offload(settings.grpc_max_workers)
    servicer = AuthServicer(service, keys, offload, ClientAddress(settings.trusted_proxy_networks))
    running = start_server(
        settings,
        settings.auth_port,
        [
            Service(
                SERVICE_NAME, lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
            )
        ],
        interceptors_for("auth.payments", verifier, offload, PUBLIC_METHODS),
        probe=database.ping,
        metrics_port=settings.auth_metrics_port,
    )
    metrics.watch_pool(database.engine)
    running.closers += [offload.shutdown, database.dispose]
    return running
