"""Opaque resume tokens of WatchTransactions, bound to the caller and to what it watches.

A token carries a checkpoint (position in the stream and the time it was current) and an HMAC
over it, the caller's subject and the watched owner ("every user" included), so a tampered token,
or one replayed by another caller or for another filter, is INVALID_ARGUMENT. A token older than
the retention is FAILED_PRECONDITION, reason RESUME_TOKEN_EXPIRED: the watcher re-reads with
ListTransactions and watches again without a token.

Key choice as for page tokens (`pagination.py`): derived from PAGE_TOKEN_KEY with a label of its
own, so the two kinds of token never verify as each other; without it, 32 random bytes per
process (a restart or another replica then refuses every earlier token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from payments_common.errors import FailedPrecondition, InvalidArgument
from transaction_service.changes import Checkpoint, Position

_VERSION = 1
_BODY = struct.Struct(">BQqq")  # version, xact id, sequence, as-of in microseconds since the epoch
_MAC_BYTES = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TOKEN_CHARS = 256
_REMEMBERED = 1024  # bindings, and tokens per binding, kept for reuse


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class Binding:
    """The MAC state of one (caller, filter), and its latest tokens.

    Watches of one caller and filter (the replicas of one service) share a binding, so each
    token they all send is signed once, not once per watch.
    """

    __slots__ = ("_issued", "_mac")

    def __init__(self, key: bytes, caller: str, owner: UUID | None):
        watched = str(owner) if owner is not None else "*"
        self._mac = hmac.new(key, f"{caller}\x00{watched}\x00".encode(), hashlib.sha256)
        self._issued: OrderedDict[bytes, str] = OrderedDict()

    def sign(self, body: bytes) -> bytes:
        """The MAC of `body` for this caller and filter."""
        mac = self._mac.copy()
        mac.update(body)
        return mac.digest()[:_MAC_BYTES]

    def token(self, body: bytes) -> str:
        """The token of `body` (remembered for the next watch of this binding that sends it)."""
        token = self._issued.get(body)
        if token is None:
            token = self._issued[body] = (
                base64.urlsafe_b64encode(body + self.sign(body)).rstrip(b"=").decode()
            )
            if len(self._issued) > _REMEMBERED:
                self._issued.popitem(last=False)
        return token


class ResumeTokens:
    """Issues and checks resume tokens with one process-wide key."""

    def __init__(self, secret: bytes | None, retention_seconds: int, clock: Callable[[], float] = time.time):
        root = secret if secret else os.urandom(32)
        self._key = hmac.new(root, b"payments.transaction.v1 resume token", hashlib.sha256).digest()
        self._retention = retention_seconds
        self._clock = clock
        self._bindings: OrderedDict[tuple[str, UUID | None], Binding] = OrderedDict()  # loop thread only

    def bind(self, caller: str, owner: UUID | None) -> Binding:
        """The binding of a watch by `caller` of `owner`'s changes (None: every user's)."""
        binding = self._bindings.get((caller, owner))
        if binding is None:
            binding = self._bindings[(caller, owner)] = Binding(self._key, caller, owner)
            if len(self._bindings) > _REMEMBERED:
                self._bindings.popitem(last=False)
        return binding

    def issue(self, binding: Binding, checkpoint: Checkpoint) -> str:
        """A URL-safe token that resumes just after `checkpoint`."""
        position = checkpoint.position
        return binding.token(_BODY.pack(_VERSION, position.xact, position.seq, _micros(checkpoint.as_of)))

    def read(self, binding: Binding, token: str) -> Checkpoint:
        """The checkpoint in `token`: INVALID_ARGUMENT if altered or foreign, FAILED_PRECONDITION if old."""
        raw = b""
        if len(token) <= MAX_TOKEN_CHARS:
            try:
                raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            except ValueError:
                raw = b""
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if (
            len(raw) != _BODY.size + _MAC_BYTES
            or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token
            or not hmac.compare_digest(mac, binding.sign(body))
        ):
            raise InvalidArgument(
                [
                    (
                        "resume_token",
                        "is not a token of this watch (altered, or issued for another caller or user_id)",
                    )
                ]
            )
        version, xact, seq, micros = _BODY.unpack(body)
        if version != _VERSION:
            raise InvalidArgument([("resume_token", "comes from an incompatible version; watch again")])
        as_of = _EPOCH + timedelta(microseconds=micros)
        if self._clock() - as_of.timestamp() > self._retention:
            raise FailedPrecondition(
                "the resume token is older than this server keeps changes for resuming; re-read with"
                " ListTransactions, then watch again without a token",
                reason="RESUME_TOKEN_EXPIRED",
            )
        return Checkpoint(Position(xact, seq), as_of)
