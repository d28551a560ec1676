"""`python -m transaction_service`: serve until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import sys

from payments_common import processes
from payments_common.config import TransactionSettings, load_settings
from payments_common.server import serve_until_signalled
from transaction_service import app


def main() -> None:
    """Load settings (one clear line on error), start, and serve until signalled."""
    settings = load_settings(TransactionSettings)
    if settings.database_url is None:
        print(
            "configuration error: DATABASE_URL: not set; set it, or use the dev runner "
            "(see README) which starts an embedded PostgreSQL and both services",
            file=sys.stderr,
        )
        raise SystemExit(2)
    # PROCESSES workers share the port; each configures its logs and starts its own server
    status = processes.run(
        settings,
        "transaction_service",
        lambda own: serve_until_signalled(app.start(own)),
        port_field="transaction_port",
        metrics_field="transaction_metrics_port",
    )
    raise SystemExit(status)


if __name__ == "__main__":
    main()
