"""Where a GetTransaction's time goes: `python -m bench.decompose [--smoke] [--repeat N] [--out DIR]`.

Serves `GetTransaction` from six servers and measures each at one concurrency, interleaved, N
times. The diagnostic ones are built by `payments_common.server.start_server` with the settings
of the service:

* `echo`: the benchmark's bytes-in/bytes-out baseline;
* `proto`: the TransactionService returning a canned reply: protobuf parsing and serialising,
  no interceptor, no database;
* `stack`: the real interceptors (request id, access log, metrics, error mapping, token check)
  and servicer on a use case that returns a fixed transaction without the database;
* `stack-quiet`: the same with `LOG_LEVEL=WARNING` (no access-log line);
* `reference`: the lean reference server (`bench/reference.py`: no framework, one prepared
  statement on PostgreSQL);
* `service`: the real transaction service.

Writes `decompose.json` and prints a table of rates and ratios to echo and to the reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from bench import ROOT
from bench.harness import Bench, workdir
from bench.modes import FULL, SMOKE
from bench.servers import TX_SERVICE, Server, free_port, spawn, stop_all, wait_healthy

SERVERS = ("echo", "proto", "stack", "stack-quiet", "reference", "service")
DIAGNOSTIC = {"proto": ("proto", "INFO"), "stack": ("stack", "INFO"), "stack-quiet": ("stack", "WARNING")}


@dataclass(frozen=True)
class Decomposition:
    concurrency: int
    repeat: int
    rates: dict[str, list[float]]
    ratio_to_echo: dict[str, float]
    ratio_to_reference: dict[str, float]


def serve(kind: str, port: int) -> None:
    """Run one diagnostic server until SIGTERM (the settings come from the environment)."""
    from payments.transaction.v1 import transaction_pb2 as pb
    from payments.transaction.v1 import transaction_pb2_grpc
    from payments_common import logs
    from payments_common.config import TransactionSettings
    from payments_common.interceptors import Interceptor, interceptors_for
    from payments_common.server import Offload, Service, serve_until_signalled, start_server
    from payments_common.tokens import Principal
    from transaction_service import app, wire
    from transaction_service.domain import Status, Transaction, TxType
    from transaction_service.service import Payments
    from transaction_service.servicer import SERVICE_NAME, TransactionServicer

    settings = TransactionSettings()
    logs.configure(settings.log_level, f"decompose-{kind}")
    now = datetime.now(UTC)
    fixed = Transaction(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        type=TxType.PAYMENT,
        status=Status.PENDING,
        amount_minor=1250,
        currency="EUR",
        description="bench payment",
        metadata={"order": "bench"},
        idempotency_key="bench",
        refund_of=None,
        refunded_minor=0,
        version=1,
        request_fingerprint=b"\0" * 32,
        created_at=now,
        updated_at=now,
    )
    servicer: transaction_pb2_grpc.TransactionServiceServicer
    interceptors: list[Interceptor] = []
    offload = Offload(settings.grpc_max_workers)
    if kind == "proto":
        reply = pb.GetTransactionResponse(transaction=wire.transaction(fixed))

        class Canned(transaction_pb2_grpc.TransactionServiceServicer):
            async def GetTransaction(self, request: object, context: object) -> pb.GetTransactionResponse:
                return reply

        servicer = Canned()
    else:

        class Fixed(Payments):
            """The use cases with a get that needs no database."""

            def __init__(self) -> None:  # no store
                pass

            def get(self, principal: Principal, tx_id: uuid.UUID, timeout_ms: int) -> Transaction:
                return fixed

        servicer = TransactionServicer(Fixed(), offload, settings.db_statement_timeout_ms)
        interceptors = interceptors_for(app.ERROR_DOMAIN, app.verifier(settings), offload)
    service = Service(
        SERVICE_NAME,
        lambda server: transaction_pb2_grpc.add_TransactionServiceServicer_to_server(servicer, server),
    )
    serve_until_signalled(start_server(settings, port, [service], interceptors, probe=lambda: True))


def measure(smoke: bool, repeat: int, concurrency: int) -> Decomposition:
    mode = replace(SMOKE if smoke else FULL, users=2 if smoke else 4, pending_per_user=10)
    rates: dict[str, list[float]] = {name: [] for name in SERVERS}
    with workdir() as scratch:
        bench = Bench(mode, scratch)
        procs = []
        try:
            bench.setup()
            _, services = bench.system()
            env = services.env()
            targets = {"reference": bench.server("ref"), "service": bench.server("tx")}
            for name, (kind, level) in DIAGNOSTIC.items():
                port = free_port()
                argv = [sys.executable, "-m", "bench.decompose", "serve", kind, str(port)]
                proc = spawn(argv, {**env, "LOG_LEVEL": level}, scratch / f"{name}.log", ROOT)
                procs.append(proc)
                wait_healthy(f"127.0.0.1:{port}", TX_SERVICE)
                targets[name] = Server(name, (f"127.0.0.1:{port}",), (proc.pid,))
            for _ in range(repeat):
                for name in SERVERS:
                    server = targets.get(name)
                    point = bench.point("echo" if server is None else "get", concurrency, server=server)
                    if point.window.errors:
                        raise RuntimeError(f"{name}: {point.window.error_codes}")
                    rates[name].append(point.window.rate)
        finally:
            stop_all(procs)
            bench.close()
    mean = {name: statistics.fmean(r) for name, r in rates.items()}
    return Decomposition(
        concurrency=concurrency,
        repeat=repeat,
        rates=rates,
        ratio_to_echo={name: round(rate / mean["echo"], 3) for name, rate in mean.items()},
        ratio_to_reference={name: round(rate / mean["reference"], 3) for name, rate in mean.items()},
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        serve(args[1], int(args[2]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.decompose", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per point (CI)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args(args)
    result = measure(options.smoke, options.repeat, options.concurrency)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "decompose.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"\nGetTransaction at {options.concurrency} in flight, {options.repeat} interleaved repetitions")
    print("| server | rates /s | × echo | × reference |\n|---|---|---:|---:|")
    for name in SERVERS:
        shown = ", ".join(f"{r:.0f}" for r in result.rates[name])
        print(
            f"| {name} | {shown} | {result.ratio_to_echo[name]:.2f} | {result.ratio_to_reference[name]:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
