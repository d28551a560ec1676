"""`python -m sandbox_processor`: serve the sandbox API until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from payments_common import logs
from sandbox_processor.app import build_app
from sandbox_processor.config import load_settings

# in-flight requests (a held `pm_card_timeout` one among them) get this long after SIGTERM
SHUTDOWN_GRACE_SECONDS = 3


def _drained(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _plain(record: logging.LogRecord) -> bool:
    """Drop uvicorn's ANSI-coloured copy of each message from the JSON lines."""
    record.__dict__.pop("color_message", None)
    return True


def main() -> None:
    """Load settings (one clear line on error), then serve with uvicorn."""
    settings = load_settings()
    logs.configure(settings.log_level, "sandbox_processor")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_plain)
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # uvicorn's lines go through our JSON handler
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the previous handler: this
    # one, so that a drained stop exits 0 like the services (not -15, nor a KeyboardInterrupt trace)
    signal.signal(signal.SIGTERM, _drained)
    signal.signal(signal.SIGINT, _drained)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
