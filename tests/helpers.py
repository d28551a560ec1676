"""Small helpers shared by the tests: error details and a logged-in caller."""

from __future__ import annotations

from dataclasses import dataclass, field

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
