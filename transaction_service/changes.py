"""The change stream's vocabulary: positions in the outbox, changes, checkpoints and reads. Pure.

The audit events are the outbox. A change's `Position` is (id of the database transaction that
wrote it, sequence number of the event); the stream serves changes in that order, and only those
no running database transaction can precede (see `sql.STREAM_READ`), so a watcher that resumes
after a position misses nothing. `Position(horizon, 0)` stands for "everything below the horizon",
the xmin of a snapshot: every transaction below it has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from transaction_service.domain import Status, Transaction


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the stream: changes are served in increasing order of (xact, seq)."""

    xact: int  # pg_current_xact_id() of the writer (64 bits, never wraps)
    seq: int  # the event's position in its sequence; 0 in a horizon

    @classmethod
    def horizon(cls, xmin: int) -> Position:
        """The position that follows every change written by a transaction below `xmin`."""
        return cls(xmin, 0)


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of a transaction: its creation or a status change."""

    event_id: UUID
    position: Position
    transaction: Transaction  # as it was right after this change
    old_status: Status | None  # None for the creation
    actor: str
    reason: str
    occurred_at: datetime

    @property
    def new_status(self) -> Status:
        """The status this change set."""
        return self.transaction.status

    @property
    def owner(self) -> UUID:
        """The user whose transaction changed."""
        return self.transaction.user_id


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a watcher got: every change it may see, up to and including `position`, was sent.

    `as_of` is when that position was current (a change's time, or the time of the read that
    reached a horizon); a resume token older than the retention is refused by it.
    """

    position: Position
    as_of: datetime

    def after(self, change: Change) -> Checkpoint:
        """The checkpoint just after `change` was sent."""
        return Checkpoint(change.position, change.occurred_at)


@dataclass(frozen=True, slots=True)
class Read:
    """What one read of the outbox returned, for every watcher of the process."""

    changes: list[Change]
    horizon: Position  # everything below it has ended
    blocked: bool  # committed changes wait behind a transaction still running
    full: bool  # the read hit its limit: read again at once

    def reached(self, before: Checkpoint, now: datetime) -> Checkpoint:
        """Where the reader stands after this read, having stood at `before`."""
        if self.full:
            return before.after(self.changes[-1])
        return Checkpoint(max(self.horizon, before.position), now)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """One round trip of a watcher catching up: the changes it may see, and how far it scanned."""

    changes: list[Change]
    scanned_to: Position | None  # None: nothing was left in the range
