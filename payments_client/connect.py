"""One call from addresses and credentials to a ready client: what most callers need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from payments_client.auth import AuthClient
from payments_client.channel import TlsConfig, open_channel
from payments_client.client import PaymentsClient
from payments_client.credentials import Login
from payments_client.retry import RetryPolicy


def connect(
    auth_address: str,
    transaction_address: str,
    credentials: Login,
    *,
    tls: TlsConfig | None = None,
    timeout: float = 10.0,
    refresh_margin_seconds: float = 60.0,
    policy: RetryPolicy | None = None,
    interceptors: Sequence[grpc.UnaryUnaryClientInterceptor[Any, Any]] = (),
) -> PaymentsClient:
    """Open both channels, log in now (bad credentials fail here) and return the client.

    The client owns the channels: use it as a context manager or call `close()`.
    """
    auth_channel = open_channel(auth_address, tls)
    tx_channel = open_channel(transaction_address, tls)
    try:
        auth = AuthClient(auth_channel, timeout=timeout, policy=policy)
        tokens = auth.login(credentials, refresh_margin_seconds=refresh_margin_seconds)
    except BaseException:
        auth_channel.close()
        tx_channel.close()
        raise
    return PaymentsClient(
        tx_channel,
        tokens,
        timeout=timeout,
        policy=policy,
        interceptors=interceptors,
        auth=auth,
        owned_channels=(auth_channel, tx_channel),
    )
