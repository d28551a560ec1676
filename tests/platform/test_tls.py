"""TLS and mutual TLS with certificates made in the test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from payments.auth.v1 import auth_pb2, auth_pb2_grpc


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool = False, san: str | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, as files."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", ca_key, None, ca_key, ca=True)
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM)}
    for name, san in (("server", "localhost"), ("client", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{name}_key"] = _pem_key(key)
        files[f"{name}_cert"] = _cert(name, key, ca.subject, ca_key, san=san).public_bytes(
            serialization.Encoding.PEM
        )
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


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
