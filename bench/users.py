"""Benchmark users: registered and logged in through the real AuthService, with their seeded ids."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

import grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc


@dataclass
class User:
    """A logged-in user and the transaction ids the workloads use (`pending` is spent by update)."""

    id: str
    email: str
    password: str
    token: str
    ids: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def spend(self, left: int) -> None:
        """Forget the PENDING ids an update run cancelled (it pops from the end)."""
        del self.pending[left:]


def register_users(address: str, count: int, prefix: str) -> list[User]:
    """Register and log in `count` users through the real AuthService."""
    users = []
    with grpc.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        for _ in range(count):
            email = f"{prefix}-{uuid.uuid4().hex[:10]}@bench.local"
            password = f"bench-{secrets.token_hex(8)}"
            user = stub.Register(
                auth_pb2.RegisterRequest(email=email, password=password, full_name="Bench User"), timeout=30
            ).user
            tokens = stub.Login(
                auth_pb2.LoginRequest(password=auth_pb2.PasswordCredentials(email=email, password=password)),
                timeout=30,
            ).tokens
            users.append(User(user.id, email, password, tokens.access_token))
    return users
