"""Where a GetTransaction's time goes: `python -m bench.decompose [--smoke] [--repeat N] [--out DIR]`.

Serves `GetTransaction` from five servers, all built by `payments_common.server.start_server` with
the same settings, and measures each at one concurrency, interleaved, N times:

* `echo`: the benchmark's bytes-in/bytes-out baseline;
* `proto`: the TransactionService returning a canned reply: protobuf parsing and serialising,
  no interceptor, no database;
* `stack`: the real interceptor (token check, metadata, metrics, access log) and servicer on a use
  case that returns a fixed transaction without the database;
* `stack-quiet`: the same with `LOG_LEVEL=WARNING` (no access-log line);
* `service`: the real transaction service.

Writes `decompose.json` and prints a table of rates and ratios to echo.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import FULL, SMOKE, Bench
from bench.system import ROOT, TX_SERVICE, free_port, wait_healthy, workdir

SERVERS = ["echo", "proto", "stack", "stack-quiet", "service"]


def _fixed_transaction() -> Any:
    from transaction_service.domain import Status, Transaction, TxType

    now = datetime.now(UTC)
    return Transaction(
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
        fingerprint=b"\0" * 32,
        created_at=now,
        updated_at=now,
    )


def serve(kind: str, port: int) -> None:
    """Run one diagnostic server until SIGTERM (the settings come from the environment)."""
    from payments.transaction.v1 import transaction_pb2 as pb
    from payments.transaction.v1 import transaction_pb2_grpc
    from payments_common import logs
    from payments_common.config import TransactionSettings
    from payments_common.interceptors import ServiceInterceptor
    from payments_common.server import Service, serve_until_signalled, start_server
    from transaction_service import app, wire
    from transaction_service.servicer import TransactionServicer

    settings = TransactionSettings()
    logs.configure(settings.log_level, f"decompose-{kind}")
    fixed = _fixed_transaction()
    servicer: Any
    interceptors: list[Any] = []
    if kind == "proto":
        reply = pb.GetTransactionResponse(transaction=wire.transaction(fixed))

        class Canned(transaction_pb2_grpc.TransactionServiceServicer):
            def GetTransaction(self, request: Any, context: Any) -> Any:
                return reply

        servicer = Canned()
    else:

        class Fixed:
            def get(self, principal: Any, tx_id: Any, timeout_ms: int) -> Any:
                return fixed

        servicer = TransactionServicer(Fixed(), settings.db_statement_timeout_ms)
        interceptors = [ServiceInterceptor(app.ERROR_DOMAIN, app.verifier(settings))]
    service = Service(
        app.SERVICE_NAME,
        lambda server: transaction_pb2_grpc.add_TransactionServiceServicer_to_server(servicer, server),
    )
    serve_until_signalled(start_server(settings, port, [service], interceptors, probe=lambda: True))


def measure(smoke: bool, repeat: int, concurrency: int) -> dict[str, Any]:
    mode = SMOKE if smoke else FULL
    mode.users = min(mode.users, 4)
    rates: dict[str, list[float]] = {name: [] for name in SERVERS}
    with workdir() as scratch:
        bench = Bench(mode, scratch)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            bench.setup()
            assert bench.services is not None
            env = bench.services._env()
            ports = {"service": bench.services.ports["tx"]}
            for name, kind, level in (
                ("proto", "proto", "INFO"),
                ("stack", "stack", "INFO"),
                ("stack-quiet", "stack", "WARNING"),
            ):
                ports[name] = free_port()
                log = (scratch / f"{name}.log").open("ab")
                argv = [sys.executable, "-m", "bench.decompose", "serve", kind, str(ports[name])]
                procs.append(
                    subprocess.Popen(
                        argv, cwd=ROOT, env={**env, "LOG_LEVEL": level}, stdout=log, stderr=subprocess.STDOUT
                    )
                )
                log.close()
                wait_healthy(f"127.0.0.1:{ports[name]}", TX_SERVICE)
            for _ in range(repeat):
                for name in SERVERS:
                    if name == "echo":
                        rates[name].append(bench.point("echo", concurrency)["rate"])
                        continue
                    bench.services.ports["tx"] = ports[name]  # the get workload's target
                    point = bench.point("get", concurrency)
                    assert point["errors"] == 0, f"{name}: {point['error_codes']}"
                    rates[name].append(point["rate"])
                bench.services.ports["tx"] = ports["service"]
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=20)
            bench.close()
    echo = statistics.mean(rates["echo"])
    return {
        "concurrency": concurrency,
        "repeat": repeat,
        "rates": rates,
        "ratio_to_echo": {name: round(statistics.mean(r) / echo, 3) for name, r in rates.items()},
    }


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
    (options.out / "decompose.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nGetTransaction at {options.concurrency} in flight, {options.repeat} interleaved repetitions")
    print("| server | rates /s | × echo |\n|---|---|---:|")
    for name in SERVERS:
        shown = ", ".join(f"{r:.0f}" for r in result["rates"][name])
        print(f"| {name} | {shown} | {result['ratio_to_echo'][name]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
