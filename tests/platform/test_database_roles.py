"""Least privilege: each service's role sees only what it needs."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, pool, text

from tests.servers import AUTH_ROLE, TX_ROLE


def _as_role(database_url, role):
    return create_engine(database_url, poolclass=pool.NullPool, connect_args={"options": f"-c role={role}"})


@pytest.mark.parametrize(
    "query",
    [
        "SELECT password_hash FROM auth.users",
        "SELECT email FROM auth.users",
        "SELECT private_key_pem FROM auth.signing_keys",
        "SELECT token_hash FROM auth.refresh_tokens",
        "SELECT secret_hash FROM auth.service_principals",
        "SELECT client_id FROM auth.service_principals",
    ],
)
def test_transaction_role_cannot_read_auth_secrets(database_url, new_user, query):
    new_user()
    engine = _as_role(database_url, TX_ROLE)
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError, match="permission denied"):
        conn.execute(text(query))
    engine.dispose()


def test_transaction_role_can_only_see_that_a_user_id_exists(database_url, new_user):
    caller = new_user()
    engine = _as_role(database_url, TX_ROLE)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT id, disabled FROM auth.users WHERE id = :i"), {"i": caller.id}
        ).one()
    engine.dispose()
    assert str(found.id) == caller.id and found.disabled is False


def test_transaction_role_can_only_see_that_a_service_principal_is_enabled(database_url, settle_client):
    engine = _as_role(database_url, TX_ROLE)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT id, disabled FROM auth.service_principals WHERE id = :i"), {"i": settle_client.id}
        ).one()
        with pytest.raises(exc.ProgrammingError, match="permission denied"):
            conn.execute(text("UPDATE auth.service_principals SET disabled = false"))
    engine.dispose()
    assert str(found.id) == settle_client.id and found.disabled is False


def test_transaction_role_cannot_write_auth_tables(database_url):
    engine = _as_role(database_url, TX_ROLE)
    with engine.connect() as conn, pytest.raises(exc.ProgrammingError, match="permission denied"):
        conn.execute(text("UPDATE auth.users SET roles = '{admin}'"))
    engine.dispose()


def test_auth_role_cannot_create_tables_or_touch_payments(database_url):
    engine = _as_role(database_url, AUTH_ROLE)
    with engine.connect() as conn:
        with pytest.raises(exc.ProgrammingError, match="permission denied"):
            conn.execute(text("CREATE TABLE auth.sneaky (id int)"))
        conn.rollback()
        with pytest.raises(exc.ProgrammingError, match="permission denied"):
            conn.execute(text("CREATE TABLE payments.sneaky (id int)"))
    engine.dispose()
