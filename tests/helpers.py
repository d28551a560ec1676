"""Small helpers shared by the tests: error details and a logged-in caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from payments_client.errors import status_details


@dataclass
class Caller:
    """A logged-in user or service principal as the tests see it."""

    id: str
    email: str = ""
    password: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying the access token."""
        return (("authorization", f"Bearer {self.access_token}"),)


# the client package already decodes google.rpc details; the tests read errors the same way
details_of = status_details


def wait_until(check: Callable[[], bool], seconds: float = 10.0, step: float = 0.05) -> bool:
    """Poll `check` until it is true or `seconds` pass; the final answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def waiting_on_locks(db_engine: Engine) -> int:
    """How many of the transaction service's statements wait on a lock right now."""
    with db_engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'transaction_service' AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )
