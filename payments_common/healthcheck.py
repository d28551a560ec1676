"""`python -m payments_common.healthcheck [HOST:PORT [SERVICE]]`: exit 0 when SERVING.

Container health checks use it (the image has no grpc_health_probe binary). Without an address
it probes $HEALTHCHECK_ADDRESS, else the auth service's default port (the image's HEALTHCHECK).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str, timeout: float, ca_file: Path | None = None) -> bool:
    """True when the server at `address` reports SERVING for `service`."""
    if ca_file is None:
        channel = grpc.insecure_channel(address)
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(ca_file.read_bytes()))
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as err:
            print(f"unhealthy: {err.code().name}", file=sys.stderr)
            return False
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and probe once."""
    parser = argparse.ArgumentParser(prog="python -m payments_common.healthcheck", description=__doc__)
    default_address = os.environ.get("HEALTHCHECK_ADDRESS", "localhost:50051")
    parser.add_argument("address", nargs="?", default=default_address)
    parser.add_argument("service", nargs="?", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tls-ca", type=Path, default=None, help="CA bundle when the server uses TLS")
    args = parser.parse_args(argv)
    return 0 if check(args.address, args.service, args.timeout, args.tls_ca) else 1


if __name__ == "__main__":
    sys.exit(main())
