"""Channels to the services, in plaintext for local development or TLS/mTLS in production."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

# Reconnect quickly after a server restart or a rolling deploy; gRPC's default
# backoff grows to two minutes, far longer than an internal caller's deadline.
DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
)


@dataclass(frozen=True)
class TlsConfig:
    """Trust roots and, for mTLS, the client's own certificate and key (PEM bytes).

    `root_certificates=None` trusts the system roots. `server_name` overrides
    the name checked against the server certificate (e.g. when dialling an IP).
    """

    root_certificates: bytes | None = field(default=None, repr=False)
    certificate_chain: bytes | None = field(default=None, repr=False)
    private_key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mTLS needs both the client certificate and its private key")

    @classmethod
    def from_files(
        cls,
        root_ca: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        server_name: str | None = None,
    ) -> TlsConfig:
        """Read PEM files (the usual shape of mounted Kubernetes secrets)."""

        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(read(root_ca), read(client_cert), read(client_key), server_name)

    @property
    def mutual(self) -> bool:
        """True when the client presents a certificate."""
        return self.certificate_chain is not None


def open_channel(
    address: str, tls: TlsConfig | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A channel to `address` ("host:port"); TLS when `tls` is given, plaintext otherwise."""
    merged = [*DEFAULT_OPTIONS, *options]
    if tls is None:
        return grpc.insecure_channel(address, options=merged)
    if tls.server_name:
        merged.append(("grpc.ssl_target_name_override", tls.server_name))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )
    return grpc.secure_channel(address, credentials, options=merged)
