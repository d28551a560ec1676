"""`python -m transaction_service`: serve until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import sys

from payments_common import logs
from payments_common.config import TransactionSettings, load_settings
from payments_common.server import serve_until_signalled
from transaction_service import app


def main() -> None:
    """Load settings (one clear line on error), start, and serve until signalled."""
    settings = load_settings(TransactionSettings)
    logs.configure(settings.log_level, "transaction_service")
    if settings.database_url is None:
        print(
            "configuration error: DATABASE_URL: not set; set it, or use the dev runner "
            "(see README) which starts an embedded PostgreSQL and both services",
            file=sys.stderr,
        )
        raise SystemExit(2)
    serve_until_signalled(app.start(settings))


if __name__ == "__main__":
    main()
