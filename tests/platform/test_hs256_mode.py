"""The original design's deployments: ALGORITHM=HS256 with a shared SECRET_KEY on both services."""

from __future__ import annotations

import uuid

import grpc
import jwt
import pytest

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.servers import tx_settings

SECRET = "an-hs256-secret-that-is-long-enough-0123456789"


def test_hs256_tokens_work_across_both_services_and_forgeries_do_not(start_auth, database_url):
    from transaction_service.app import start as start_tx

    auth = start_auth(algorithm="HS256", secret_key=SECRET)
    tx = start_tx(tx_settings(database_url, algorithm="HS256", secret_key=SECRET))
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{auth.port}") as a,
            grpc.insecure_channel(f"127.0.0.1:{tx.port}") as t,
        ):
            auth_stub = auth_pb2_grpc.AuthServiceStub(a)
            tx_stub = transaction_pb2_grpc.TransactionServiceStub(t)
            email, password = f"hs-{uuid.uuid4().hex[:8]}@example.com", "hs256 mode password"
            auth_stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
            token = auth_stub.Login(
                auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
            ).tokens.access_token
            assert jwt.get_unverified_header(token)["alg"] == "HS256"
            assert auth_stub.GetJwks(auth_pb2.GetJwksRequest()).jwks_json == '{"keys": []}'
            created = tx_stub.CreateTransaction(
                pb.CreateTransactionRequest(
                    type=pb.TRANSACTION_TYPE_PAYMENT, amount_minor=500, currency="USD", idempotency_key="hs-1"
                ),
                metadata=(("authorization", f"Bearer {token}"),),
            ).transaction
            assert created.amount_minor == 500
            claims = jwt.decode(token, options={"verify_signature": False})
            forged = jwt.encode(
                {**claims, "roles": ["admin"]},
                "x" * 48,
                algorithm="HS256",
                headers={"kid": "hs256", "typ": "at+jwt"},
            )
            with pytest.raises(grpc.RpcError) as err:
                tx_stub.GetTransaction(
                    pb.GetTransactionRequest(id=created.id), metadata=(("authorization", f"Bearer {forged}"),)
                )
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        tx.stop()
