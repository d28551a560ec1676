"""Opaque page tokens for keyset pagination, bound to the caller and the filter.

A token carries the (created_at, id) of the last row served, plus an HMAC
over that cursor, the caller's subject and a digest of the filter. Reusing a
token with another caller or filter, or altering one byte, is refused with
INVALID_ARGUMENT.

Key choice: PAGE_TOKEN_KEY when set (required for several replicas behind a
balancer, and to keep tokens valid across restarts); otherwise 32 random
bytes drawn at start-up, so a restart simply invalidates open listings.
The configured secret is never used directly: a purpose-bound key is derived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from payments_common.errors import InvalidArgument
from transaction_service.domain import Status, TxType

_VERSION = 1
_BODY = struct.Struct(">Bq16s")  # version, created_at in microseconds since the epoch, id
_MAC_BYTES = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ListFilter:
    """What a listing selects; a page token is valid only for the same filter."""

    owner: UUID
    status: Status | None = None
    type: TxType | None = None
    currency: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def digest(self) -> bytes:
        """A stable digest of every field, so any change of filter invalidates the token."""
        parts = [
            str(self.owner),
            self.status or "",
            self.type or "",
            self.currency or "",
            _micros(self.created_from) if self.created_from else "",
            _micros(self.created_to) if self.created_to else "",
        ]
        return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


@dataclass(frozen=True)
class Cursor:
    """Position after the last row served: the next page holds strictly older rows."""

    created_at: datetime
    id: UUID


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class PageTokens:
    """Issues and checks page tokens with one process-wide key."""

    def __init__(self, secret: bytes | None = None):
        root = secret if secret else os.urandom(32)
        self._key = hmac.new(root, b"payments.transaction.v1 page token", hashlib.sha256).digest()

    def _mac(self, body: bytes, caller: str, listing: ListFilter) -> bytes:
        message = body + listing.digest() + caller.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, cursor: Cursor, caller: str, listing: ListFilter) -> str:
        """A URL-safe token for the page after `cursor`."""
        body = _BODY.pack(_VERSION, _micros(cursor.created_at), cursor.id.bytes)
        raw = body + self._mac(body, caller, listing)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def read(self, token: str, caller: str, listing: ListFilter) -> Cursor:
        """The cursor in `token`, or INVALID_ARGUMENT if it was altered or issued for another listing."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raw = b""
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if (
            canonical != token
            or len(raw) != _BODY.size + _MAC_BYTES
            or not hmac.compare_digest(mac, self._mac(body, caller, listing))
        ):
            raise InvalidArgument(
                [
                    (
                        "page_token",
                        "is not a token of this listing (altered, or issued for another caller or filter)",
                    )
                ]
            )
        version, micros, id_bytes = _BODY.unpack(body)
        if version != _VERSION:
            raise InvalidArgument(
                [("page_token", "comes from an incompatible version; start the listing again")]
            )
        return Cursor(_EPOCH + timedelta(microseconds=micros), UUID(bytes=id_bytes))
