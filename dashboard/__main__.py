"""`python -m dashboard`: serve the dashboard with uvicorn until SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import sys

import uvicorn

from dashboard.app import build_app
from dashboard.settings import DashboardSettings
from payments_common import logs
from payments_common.config import load_settings

# an open live page holds a request forever; on SIGTERM it gets this long before it is cut
SHUTDOWN_GRACE_SECONDS = 3


def main() -> int:
    """Read the settings (one clear line on a bad one), then serve."""
    settings = load_settings(DashboardSettings)
    logs.configure(settings.log_level, "dashboard")
    log = logging.getLogger("dashboard")
    if not settings.serves_tls:
        log.warning("serving PLAINTEXT HTTP; put it behind TLS (or set DASHBOARD_TLS_CERT_FILE)")
    config = uvicorn.Config(
        build_app(settings),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        ssl_certfile=settings.dashboard_tls_cert_file,
        ssl_keyfile=settings.dashboard_tls_key_file,
        log_config=None,  # the JSON lines of payments_common.logs, like the services
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = uvicorn.Server(config)
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again under the handlers it found:
    # these make a drained stop exit 0, as the services do (a second Ctrl-C still forces it)
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda _signum, _frame: None)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
