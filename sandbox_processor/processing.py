"""Creating charges and refunds under idempotency keys, the way a real processor does.

The rules follow the IETF draft "The Idempotency-Key HTTP Header Field" (and Stripe): a key is
required; the same key with the same request replays the first answer, byte for byte, with
`Idempotent-Replayed: true`; the same key with another request is 422 `idempotency_key_reused`;
while the first request under a key is still running, another is 409 `idempotency_key_in_use`.
Only answers that created something are saved: a refused request may be corrected and retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sandbox_processor.behaviour import METHODS, ApiError, Behaviour, invalid
from sandbox_processor.config import SandboxSettings
from sandbox_processor.store import Record, Store

MAX_KEY = 255
MAX_REFERENCE = 255
MAX_AMOUNT = 10**15
_CURRENCY = re.compile(r"[A-Z]{3}")
_VISIBLE = re.compile(r"[!-~]+")
CHARGE_FIELDS = {"amount", "currency", "payment_method", "reference", "description"}
REFUND_FIELDS = {"charge", "amount", "currency", "reference"}


@dataclass(frozen=True)
class Answer:
    """What the HTTP layer sends: a status, a JSON body, and whether to withhold it."""

    status_code: int
    body: str
    replayed: bool = False
    hold: bool = False


def fingerprint(path: str, payload: dict[str, Any]) -> str:
    """Identity of a request: the endpoint and its canonical JSON (key order and spacing ignored)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def _check_fields(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(payload.keys() - allowed)
    if unknown:
        raise invalid(unknown[0], "unknown parameter", "parameter_unknown")


def _text(payload: dict[str, Any], name: str, limit: int) -> str:
    value = payload.get(name)
    if value is None:
        raise invalid(name, "required", "parameter_missing")
    if not isinstance(value, str) or not _VISIBLE.fullmatch(value) or len(value) > limit:
        raise invalid(name, f"must be 1 to {limit} visible ASCII characters")
    return value


def _amount(payload: dict[str, Any]) -> int:
    value = payload.get("amount")
    if value is None:
        raise invalid("amount", "required", "parameter_missing")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT:
        raise invalid("amount", f"must be an integer of minor units, 1 to {MAX_AMOUNT}")
    return value


def _currency(payload: dict[str, Any]) -> str:
    value = payload.get("currency")
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise invalid("currency", "must be an ISO 4217 code in upper case, e.g. EUR")
    return value


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Processor:
    """The charge and refund endpoints' logic, over the store."""

    def __init__(self, store: Store, settings: SandboxSettings) -> None:
        self._store = store
        self._settings = settings
        self._in_flight: set[str] = set()  # keys of requests still running (dies with the process)

    def lookup(self, kind: str, reference: str) -> Record | None:
        """A charge or refund by the merchant's reference."""
        return self._store.find(kind, reference)

    async def create(self, kind: str, path: str, key: str | None, payload: dict[str, Any]) -> Answer:
        """Create a charge or refund under `key`, or replay what that key already answered."""
        if not key or len(key) > MAX_KEY or not _VISIBLE.fullmatch(key):
            raise ApiError(
                400,
                "invalid_request_error",
                "idempotency_key_missing",
                f"send an Idempotency-Key header of 1 to {MAX_KEY} visible ASCII characters",
            )
        digest = fingerprint(path, payload)
        saved = self._store.saved_answer(key)
        if saved is not None:
            if saved[0] != digest:
                raise ApiError(
                    422,
                    "idempotency_error",
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request; use a new key for a new request",
                )
            return Answer(saved[1], saved[2], replayed=True)
        if key in self._in_flight:
            raise ApiError(
                409,
                "idempotency_error",
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed; retry later",
            )
        self._in_flight.add(key)
        try:
            return await (
                self._charge(key, digest, payload) if kind == "charge" else self._refund(key, digest, payload)
            )
        finally:
            self._in_flight.discard(key)

    async def _charge(self, key: str, digest: str, payload: dict[str, Any]) -> Answer:
        _check_fields(payload, CHARGE_FIELDS)
        amount, currency = _amount(payload), _currency(payload)
        reference = _text(payload, "reference", MAX_REFERENCE)
        method = _text(payload, "payment_method", 100)
        description = payload.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 500):
            raise invalid("description", "must be a string of at most 500 characters")  # accepted, not kept
        behaviour = METHODS.get(method)
        if behaviour is None:
            raise invalid("payment_method", f"unknown test payment method; use one of {', '.join(METHODS)}")
        await self._maybe_slow(behaviour)
        record = self._record("charge", reference, None, amount, currency, method, behaviour)
        with self._store.unit():
            self._refuse_duplicate("charge", reference)
            self._store.insert(record)
            return self._answer(key, digest, record, behaviour)

    async def _refund(self, key: str, digest: str, payload: dict[str, Any]) -> Answer:
        _check_fields(payload, REFUND_FIELDS)
        amount = _amount(payload)
        currency = _currency(payload) if payload.get("currency") is not None else None
        reference = _text(payload, "reference", MAX_REFERENCE)
        charge_id = _text(payload, "charge", 100)
        charge = self._store.get(charge_id)
        if charge is None or charge.kind != "charge":
            raise ApiError(
                404, "invalid_request_error", "resource_missing", f"no charge {charge_id!r}", "charge"
            )
        if currency is not None and currency != charge.currency:
            raise invalid("currency", f"must be the charge's currency, {charge.currency}")
        behaviour = METHODS[charge.payment_method]
        await self._maybe_slow(behaviour)
        record = self._record(
            "refund", reference, charge.id, amount, charge.currency, charge.payment_method, behaviour
        )
        with self._store.unit():
            self._refuse_duplicate("refund", reference)
            if not self._store.reserve_refund(charge.id, amount):
                current = self._store.get(charge.id)
                if current is None or current.status != "succeeded":
                    raise invalid(
                        "charge", "only a succeeded charge can be refunded", "charge_not_refundable"
                    )
                left = current.amount - current.amount_refunded
                raise invalid("amount", f"exceeds what is left to refund ({left})", "amount_too_large")
            self._store.insert(record)
            return self._answer(key, digest, record, behaviour)

    async def _maybe_slow(self, behaviour: Behaviour) -> None:
        if behaviour.slow:
            await asyncio.sleep(self._settings.slow_seconds)

    def _record(
        self,
        kind: str,
        reference: str,
        charge: str | None,
        amount: int,
        currency: str,
        method: str,
        b: Behaviour,
    ) -> Record:
        """A new object; one answered "processing" is due to settle after SANDBOX_ASYNC_DELAY_SECONDS."""
        now = time.time()
        return Record(
            id=_new_id("ch" if kind == "charge" else "re"),
            kind=kind,
            reference=reference,
            charge=charge,
            amount=amount,
            currency=currency,
            payment_method=method,
            status=b.status,
            failure_code=b.failure_code,
            amount_refunded=0,
            created=int(now),
            settle_at=now + self._settings.async_delay_seconds if b.status == "processing" else None,
        )

    def _refuse_duplicate(self, kind: str, reference: str) -> None:
        existing = self._store.find(kind, reference)
        if existing is not None:
            # one object per reference: a second key for the same reference would charge twice
            raise ApiError(
                409,
                "invalid_request_error",
                "reference_in_use",
                f"{kind} {existing.id} already has this reference; retry with its Idempotency-Key",
                "reference",
            )

    def _answer(self, key: str, digest: str, record: Record, behaviour: Behaviour) -> Answer:
        body = json.dumps(record.to_json())
        self._store.save_answer(key, digest, 200, body)
        return Answer(200, body, hold=behaviour.hold)
