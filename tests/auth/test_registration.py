"""Register: success, duplicates and every input rule, each a field violation."""

from __future__ import annotations

import uuid

import grpc
import pytest
from sqlalchemy import text

from payments.auth.v1 import auth_pb2
from tests.helpers import details_of


def _email() -> str:
    return f"reg-{uuid.uuid4().hex[:10]}@example.com"


def _register(stub, email, password="long enough password", full_name="Ann"):
    return stub.Register(auth_pb2.RegisterRequest(email=email, password=password, full_name=full_name))


def _error(stub, **kwargs) -> object:
    with pytest.raises(grpc.RpcError) as err:
        _register(stub, **kwargs)
    return details_of(err.value)


def test_registration_normalises_the_email(auth_stub):
    email = _email()
    user = _register(auth_stub, "  " + email.upper() + " ").user
    assert user.email == email
    assert uuid.UUID(user.id)


def test_duplicate_email_is_already_exists_even_with_other_case(auth_stub):
    email = _email()
    _register(auth_stub, email)
    details = _error(auth_stub, email=email.upper())
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.reason == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("password", "field_text"),
    [("short", "at least 12"), ("x" * 1025, "at most 1024"), ("with\x00nul-character", "NUL")],
)
def test_weak_or_oversized_password_is_a_field_violation(auth_stub, db_engine, password, field_text):
    email = _email()
    details = _error(auth_stub, email=email, password=password)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field_text in details.violations["password"]
    with db_engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM auth.users WHERE email = :e"), {"e": email}).scalar() == 0
        )


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "x" * 250 + "@example.com", ""])
def test_bad_email_is_a_field_violation(auth_stub, email):
    details = _error(auth_stub, email=email)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in details.violations


def test_every_bad_field_is_reported_at_once(auth_stub):
    details = _error(auth_stub, email="nope", password="short", full_name="n" * 201)
    assert set(details.violations) == {"email", "password", "full_name"}
    assert details.domain == "auth.payments"


def test_long_unicode_password_is_accepted_and_logs_in(auth_stub):
    email, password = _email(), "пароль-🔐-" * 100  # 1000 characters, ~2000 UTF-8 bytes
    _register(auth_stub, email, password=password)
    login = auth_stub.Login(
        auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password))
    )
    assert login.tokens.access_token


def test_password_is_not_truncated_after_72_bytes(auth_stub):
    email, password = _email(), "a" * 72 + "X"
    _register(auth_stub, email, password=password)
    with pytest.raises(grpc.RpcError) as err:
        auth_stub.Login(
            auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password="a" * 72 + "Y"))
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_password_is_stored_as_an_argon2id_hash(auth_stub, db_engine):
    email = _email()
    _register(auth_stub, email, password="correct horse battery")
    with db_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM auth.users WHERE email = :e"), {"e": email}
        ).scalar()
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
