"""Page tokens are opaque, bound to caller and filter, and refuse any alteration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from payments_common.errors import InvalidArgument
from transaction_service.domain import Status
from transaction_service.pagination import Cursor, ListFilter, PageTokens

OWNER = uuid.uuid4()
LISTING = ListFilter(OWNER, status=Status.PENDING)
CURSOR = Cursor(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid.uuid4())


def test_a_token_round_trips_its_cursor_to_the_microsecond() -> None:
    tokens = PageTokens(b"k" * 32)
    assert tokens.read(tokens.issue(CURSOR, "alice", LISTING), "alice", LISTING) == CURSOR


@pytest.mark.parametrize(
    ("caller", "listing"),
    [
        ("mallory", LISTING),
        ("alice", ListFilter(OWNER)),
        ("alice", ListFilter(uuid.uuid4(), status=Status.PENDING)),
    ],
)
def test_a_token_is_refused_for_another_caller_or_filter(caller: str, listing: ListFilter) -> None:
    tokens = PageTokens(b"k" * 32)
    with pytest.raises(InvalidArgument):
        tokens.read(tokens.issue(CURSOR, "alice", LISTING), caller, listing)


def test_flipping_any_character_of_a_token_is_detected() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.issue(CURSOR, "alice", LISTING)
    for i in range(len(token)):
        altered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(InvalidArgument):
            tokens.read(altered, "alice", LISTING)


@pytest.mark.parametrize("junk", ["", "!", "not a token", "é", "AAAA", "=" * 8])
def test_garbage_tokens_are_refused(junk: str) -> None:
    with pytest.raises(InvalidArgument):
        PageTokens(b"k" * 32).read(junk, "alice", LISTING)


def test_tokens_of_another_key_are_refused_and_a_random_key_is_used_by_default() -> None:
    token = PageTokens(b"k" * 32).issue(CURSOR, "alice", LISTING)
    with pytest.raises(InvalidArgument):
        PageTokens(b"other" * 8).read(token, "alice", LISTING)
    with pytest.raises(InvalidArgument):
        PageTokens().read(token, "alice", LISTING)
