"""Wiring: settings -> engine, token verifier, servicer -> a running gRPC server."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2_grpc
from payments_common import db, metrics
from payments_common.config import TransactionSettings
from payments_common.interceptors import interceptors_for
from payments_common.server import Offload, RunningServer, Service, start_server
from payments_common.tokens import (
    HS256_KID,
    CachedKeys,
    KeyFetcher,
    TokenVerifier,
    VerificationKey,
    keys_from_jwks,
)
from transaction_service import streaming
from transaction_service.pagination import PageTokens
from transaction_service.repository import PostgresStore
from transaction_service.service import Payments
from transaction_service.servicer import PUBLIC_METHODS, SERVICE_NAME, TransactionServicer

ERROR_DOMAIN = "transaction.payments"
JWKS_DEADLINE_SECONDS = 2.0


def _jwks_fetcher(address: str, ca_file: Path | None) -> KeyFetcher:
    """Fetch the auth service's public keys; a channel per fetch, since fetches are rare."""

    def fetch() -> Mapping[str, VerificationKey]:
        if ca_file is None:
            channel = grpc.insecure_channel(address)
        else:
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca_file.read_bytes()))
        with channel:
            reply = auth_pb2_grpc.AuthServiceStub(channel).GetJwks(
                auth_pb2.GetJwksRequest(), timeout=JWKS_DEADLINE_SECONDS
            )
        return keys_from_jwks(reply.jwks_json)

    return fetch


def verifier(settings: TransactionSettings) -> TokenVerifier:
    """Public keys from the auth service; only the legacy HS256 mode holds a shared secret."""
    if settings.algorithm == "HS256":
        assert settings.secret_key is not None  # enforced by the settings validator
        static = {
            HS256_KID: VerificationKey(HS256_KID, "HS256", settings.secret_key.get_secret_value().encode())
        }
        keys = CachedKeys(lambda: static, min_refresh_seconds=0)
    else:
        keys = CachedKeys(
            _jwks_fetcher(settings.auth_service_addr, settings.auth_service_ca_file),
            settings.jwks_min_refresh_seconds,
            settings.jwks_refresh_seconds,
            name=f"auth service's public keys (from {settings.auth_service_addr})",
        )
    return TokenVerifier(
        keys,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        leeway=settings.token_leeway_seconds,
    )


def start(settings: TransactionSettings) -> RunningServer:
    """Start the transaction service; `running.stop()` drains it and releases the pool."""
    database = db.database_for(settings, "transaction_service")
    secret = settings.page_token_key.get_secret_value().encode() if settings.page_token_key else None
    offload = Offload(settings.grpc_max_workers)
    stream = streaming.build(settings, database, offload)
    servicer = TransactionServicer(
        Payments(PostgresStore(database), PageTokens(secret), settings.payment_processor),
        offload,
        settings.db_statement_timeout_ms,
        settings.grpc_max_message_bytes,
        watches=stream.watches,
    )
    service = Service(
        SERVICE_NAME,
        lambda server: transaction_pb2_grpc.add_TransactionServiceServicer_to_server(servicer, server),
    )
    tokens = verifier(settings)
    running = start_server(
        settings,
        settings.transaction_port,
        services=[service],
        interceptors=interceptors_for(ERROR_DOMAIN, tokens, offload, PUBLIC_METHODS),
        # ready only with the keys that verify tokens (refreshed on schedule here) and the database
        probe=lambda: tokens.keys.maintain() and database.ping(),
        metrics_port=settings.transaction_metrics_port,
    )
    metrics.watch_pool(database.engine)
    streaming.attach(running, stream)  # watches end (UNAVAILABLE) before the drain; their reader closes first
    running.closers += [offload.shutdown, database.dispose]
    return running
