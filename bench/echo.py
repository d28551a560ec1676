"""The echo baseline: `python -m bench.echo PORT` serves `/bench.Echo/Echo` (bytes in, same bytes out).

It is built by the services' own `start_server` with the same settings object (`grpc.aio` on
uvloop, concurrency limit, message limits, health, reflection) but no interceptor, no database
and no protobuf: the ceiling of the Python gRPC layer on this machine. Reported for information;
the services' targets are ratios to the lean reference (`bench/reference.py`).
"""

from __future__ import annotations

import sys

import grpc

from payments_common.config import CommonSettings
from payments_common.server import Service, serve_until_signalled, start_server

SERVICE_NAME = "bench.Echo"


async def echo(request: bytes, _context: object) -> bytes:
    return request


def register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(echo)  # no (de)serialisers: raw bytes
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {"Echo": handler}),))


def main() -> None:
    port = int(sys.argv[1])
    settings = CommonSettings()  # the same environment (GRPC_*) the services read
    running = start_server(settings, port, [Service(SERVICE_NAME, register)], [], probe=lambda: True)
    serve_until_signalled(running)


if __name__ == "__main__":
    main()
