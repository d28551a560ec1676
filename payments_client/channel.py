"""Channels to the services, in plaintext for local development or TLS/mTLS in production."""

from __future__ import annotations

import json
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
# Spread calls over every address the name resolves to, not just the first. With a headless
# Kubernetes Service, "dns:///transactions:50052" resolves to every ready pod; the servers'
# max_connection_age makes clients re-resolve, so new replicas of an autoscaler get calls too.
ROUND_ROBIN: tuple[str, Any] = (
    "grpc.service_config",
    json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}),
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


def channel_options(
    address: str, options: Sequence[tuple[str, Any]] = (), *, round_robin: bool | None = None
) -> list[tuple[str, Any]]:
    """The options `open_channel` uses: ours, round robin when asked or implied, then the caller's.

    `round_robin=None` means: for a "dns:///" address (one that may resolve to many servers).
    A caller's own "grpc.service_config" or "grpc.lb_policy_name" wins.
    """
    if round_robin is None:
        round_robin = address.startswith("dns:")
    merged = list(DEFAULT_OPTIONS)
    if round_robin and not {"grpc.service_config", "grpc.lb_policy_name"} & {k for k, _ in options}:
        merged.append(ROUND_ROBIN)
    return [*merged, *options]


def open_channel(
    address: str,
    tls: TlsConfig | None = None,
    options: Sequence[tuple[str, Any]] = (),
    *,
    round_robin: bool | None = None,
) -> grpc.Channel:
    """A channel to `address`; TLS when `tls` is given, plaintext otherwise.

    "host:port" connects to the first address the name resolves to; "dns:///host:port" (e.g. a
    headless Service) balances calls round robin over all of them (see `channel_options`).
    """
    merged = channel_options(address, options, round_robin=round_robin)
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
