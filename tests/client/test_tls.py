"""The client speaks TLS and mTLS to a server configured with certificates made in the test."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

import payments_client as pc

SERVER_NAME = "payments-auth.internal"  # not the address dialled: exercises server_name


@pytest.fixture(scope="module")
def mtls_auth(start_auth: Callable[..., Any], pki: dict[str, Path]) -> str:
    """An auth server that requires client certificates signed by the test CA."""
    running = start_auth(
        tls_cert_file=pki["server_cert"],
        tls_key_file=pki["server_key"],
        tls_client_ca_file=pki["ca"],
        auth_metrics_port=None,
    )
    return f"127.0.0.1:{running.port}"


def _register(address: str, tls: pc.TlsConfig | None) -> None:
    with pc.open_channel(address, tls) as channel:
        auth = pc.AuthClient(channel, timeout=3.0)
        email, password = f"tls-{uuid.uuid4().hex[:10]}@example.com", f"pw-{uuid.uuid4().hex}"
        auth.register(email, password)
        assert auth.current_user(auth.login(pc.UserLogin(email, password))).email == email


def test_a_client_with_a_certificate_calls_over_mtls(mtls_auth: str, pki: dict[str, Path]) -> None:
    tls = pc.TlsConfig.from_files(pki["ca"], pki["client_cert"], pki["client_key"], server_name=SERVER_NAME)
    assert tls.mutual
    _register(mtls_auth, tls)


def test_a_client_without_a_certificate_is_refused(mtls_auth: str, pki: dict[str, Path]) -> None:
    with pytest.raises(pc.PaymentsError) as caught:
        _register(mtls_auth, pc.TlsConfig.from_files(pki["ca"], server_name=SERVER_NAME))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_is_refused(mtls_auth: str) -> None:
    with pytest.raises(pc.PaymentsError) as caught:
        _register(mtls_auth, None)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_without_its_key_is_rejected_before_dialling(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="both"):
        pc.TlsConfig.from_files(pki["ca"], client_cert=pki["client_cert"])
