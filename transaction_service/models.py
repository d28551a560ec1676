"""Table definitions of the `payments` schema for SQLAlchemy Core queries.

Migrations own the real DDL (constraints, indexes, grants); these objects only
name the columns the repository reads and writes, so they never run DDL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

transactions = Table(
    "transactions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("request_fingerprint", LargeBinary, nullable=False),
    Column("refund_of", Uuid),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    schema="payments",
)

events = Table(
    "transaction_events",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("transaction_id", Uuid, nullable=False),
    Column("old_status", Text),
    Column("new_status", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    schema="payments",
)

# Owned by the auth service; this role may read only these two columns of each.
users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("disabled", Boolean, nullable=False),
    schema="auth",
)
service_principals = Table(
    "service_principals",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("disabled", Boolean, nullable=False),
    schema="auth",
)
