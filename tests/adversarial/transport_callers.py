"""The legitimate side of the transport properties: real grpc callers that must still be served.

`serve_legitimately` makes calls from 4 threads over a fresh channel and returns what they got
(`Served`: codes and latencies); `tx_calls` and `auth_calls` are the calls of each service, with
liveness checks; the paths and limits the attacks aim at are named here too.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments.auth.v1 import auth_pb2, auth_pb2_grpc
from payments.transaction.v1 import transaction_pb2 as pb
from payments.transaction.v1 import transaction_pb2_grpc
from tests.helpers import Caller

TX = "/payments.transaction.v1.TransactionService/"
AUTH = "/payments.auth.v1.AuthService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
LIVENESS = health_pb2.HealthCheckRequest(service="liveness")
STREAMS_PER_CONNECTION = 100  # the default GRPC_MAX_CONCURRENT_STREAMS


@dataclass
class Served:
    """What legitimate callers got: codes per kind of call, and latencies."""

    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    @property
    def ok_share(self) -> float:
        return sum(n for key, n in self.codes.items() if key.endswith(":OK")) / max(self.calls, 1)

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000, 1)

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "ok_pct": round(100 * self.ok_share, 2),
            "p50_ms": self.ms(0.5),
            "p99_ms": self.ms(0.99),
            "codes": dict(self.codes),
        }


def serve_legitimately(address: str, calls: dict[str, Callable[[grpc.Channel], Any]], n: int) -> Served:
    """`n` calls from 4 threads over one fresh channel, cycling through `calls` (name -> call)."""
    served = Served()
    names = list(calls)
    with grpc.insecure_channel(address) as channel:

        def one(i: int) -> None:
            name = names[i % len(names)]
            started = time.monotonic()
            try:
                calls[name](channel)
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name  # type: ignore[attr-defined]
            served.latencies.append(time.monotonic() - started)
            served.codes[f"{name}:{code}"] += 1

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, range(n)))
    return served


def liveness(channel: grpc.Channel) -> Any:
    return health_pb2_grpc.HealthStub(channel).Check(LIVENESS, timeout=5)


def tx_calls(owner: Caller) -> dict[str, Callable[[grpc.Channel], Any]]:
    def listing(channel: grpc.Channel) -> Any:
        stub = transaction_pb2_grpc.TransactionServiceStub(channel)
        return stub.ListTransactions(pb.ListTransactionsRequest(page_size=5), metadata=owner.md, timeout=5)

    return {"ListTransactions": listing, "liveness": liveness}


def auth_calls(users: list[Caller]) -> dict[str, Callable[[grpc.Channel], Any]]:
    """Logins (each of `users` in turn: concurrent logins of one account may contend), JWKS, liveness."""
    turn = itertools.count()

    def login(channel: grpc.Channel) -> Any:
        user = users[next(turn) % len(users)]
        credentials = auth_pb2.PasswordCredentials(email=user.email, password=user.password)
        request = auth_pb2.LoginRequest(password=credentials)
        return auth_pb2_grpc.AuthServiceStub(channel).Login(request, timeout=5)

    def jwks(channel: grpc.Channel) -> Any:
        return auth_pb2_grpc.AuthServiceStub(channel).GetJwks(auth_pb2.GetJwksRequest(), timeout=5)

    return {"Login": login, "GetJwks": jwks, "liveness": liveness}


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
