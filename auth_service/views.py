"""What the auth service's use cases return: views of a user and issued tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from payments_common.db import Row


@dataclass(frozen=True)
class UserView:
    """What callers may see of a user."""

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> UserView:
        """The view of a row holding `sql.USER_VIEW_COLUMNS`."""
        return cls(row.id, row.email, row.full_name, list(row.roles), row.created_at)


@dataclass(frozen=True)
class Tokens:
    """An issued access token and, for users, the next refresh token."""

    access_token: str = field(repr=False)
    expires_in: int
    scope: str
    refresh_token: str = field(default="", repr=False)
    refresh_expires_in: int = 0
