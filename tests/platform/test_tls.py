"""TLS and mutual TLS with certificates made in the test."""

from __future__ import annotations

import grpc
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc


def _jwks(channel) -> str:
    return auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=5).jwks_json


def test_tls_server_answers_tls_clients_and_refuses_plaintext(start_auth, pki):
    server = start_auth(tls_cert_file=pki["server_cert"], tls_key_file=pki["server_key"])
    address = f"localhost:{server.port}"
    credentials = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    with grpc.secure_channel(address, credentials) as channel:
        assert '"keys"' in _jwks(channel)
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as err:
        _jwks(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_refuses_a_client_without_a_valid_certificate(start_auth, pki):
    server = start_auth(
        tls_cert_file=pki["server_cert"], tls_key_file=pki["server_key"], tls_client_ca_file=pki["ca"]
    )
    address = f"localhost:{server.port}"
    ca = pki["ca"].read_bytes()
    with (
        grpc.secure_channel(address, grpc.ssl_channel_credentials(ca)) as channel,
        pytest.raises(grpc.RpcError) as err,
    ):
        _jwks(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with_cert = grpc.ssl_channel_credentials(
        ca, pki["client_key"].read_bytes(), pki["client_cert"].read_bytes()
    )
    with grpc.secure_channel(address, with_cert) as channel:
        assert '"keys"' in _jwks(channel)


def test_tls_settings_must_come_in_pairs(pki):
    from pydantic import ValidationError

    from payments_common.config import AuthSettings

    with pytest.raises(ValidationError, match="TLS_CERT_FILE"):
        AuthSettings(_env_file=None, tls_cert_file=pki["server_cert"])


def test_transaction_service_fetches_the_keys_over_tls(start_auth, pki, database_url, new_user):
    from payments.transaction.v1 import transaction_pb2, transaction_pb2_grpc
    from tests.servers import tx_settings
    from transaction_service.app import start as start_tx

    auth = start_auth(tls_cert_file=pki["server_cert"], tls_key_file=pki["server_key"])
    tx = start_tx(tx_settings(database_url, f"localhost:{auth.port}", auth_service_ca_file=pki["ca"]))
    caller = new_user()  # token from the shared auth server: same database, same signing keys
    try:
        with grpc.insecure_channel(f"127.0.0.1:{tx.port}") as channel:
            reply = transaction_pb2_grpc.TransactionServiceStub(channel).ListTransactions(
                transaction_pb2.ListTransactionsRequest(), metadata=caller.md, timeout=10
            )
        assert list(reply.transactions) == []
    finally:
        tx.stop()
