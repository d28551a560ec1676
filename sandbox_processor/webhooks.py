"""Settling "processing" objects and delivering their events: signed, retried, from a durable outbox.

Events are written to the outbox in the same commit as the status they announce, so a restart
neither loses nor invents one; a delivery that was sent but not yet marked when the process died
is sent again (at-least-once, as every real processor delivers). Each attempt is signed afresh
with its own timestamp, like Stripe's `Stripe-Signature`:
`Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time

import httpx

from sandbox_processor.behaviour import METHODS, STALE_FAILURE_CODE, Webhooks
from sandbox_processor.config import SandboxSettings
from sandbox_processor.store import Delivery, Record, Store

SIGNATURE_HEADER = "Sandbox-Signature"
TICK_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 300.0
BATCH = 32
# the second copy of a `pm_card_webhook_twice` event, and the stale failure after a success, come later
REPEAT_GAP_SECONDS = 0.2
STALE_GAP_SECONDS = 0.3

log = logging.getLogger("sandbox_processor.webhooks")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def event_body(record: Record, created: int) -> tuple[str, str]:
    """(event id, JSON body) of an event announcing `record` in its status."""
    event_id = f"evt_{secrets.token_hex(12)}"
    body = {
        "id": event_id,
        "object": "event",
        "type": f"{record.kind}.{record.status}",
        "created": created,
        "data": {"object": record.to_json()},
    }
    return event_id, json.dumps(body)


class Dispatcher:
    """One background task: settles what is due, then sends what is due, every tick."""

    def __init__(self, store: Store, settings: SandboxSettings, client: httpx.AsyncClient) -> None:
        self._store = store
        self._settings = settings
        self._client = client
        self._url = str(settings.webhook_url) if settings.webhook_url else None
        self._sending: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(16)  # deliveries in flight at once

    async def run(self) -> None:
        """Until cancelled; a failing tick is logged and the next one tries again."""
        try:
            while True:
                try:
                    self.settle_due()
                    self.dispatch_due()
                except Exception:
                    log.exception("webhook dispatcher tick failed")
                await asyncio.sleep(TICK_SECONDS)
        finally:
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def settle_due(self) -> None:
        """Give every due "processing" object its final status and queue its events."""
        now = time.time()
        for record in self._store.due_settlements(now):
            final = record.with_status("succeeded")
            with self._store.unit():
                self._store.settle(final)
                self._announce(final, now)

    def _announce(self, final: Record, now: float) -> None:
        pattern = METHODS[final.payment_method].webhooks
        if pattern is Webhooks.NONE:
            return
        if self._url is None:
            log.info("no SANDBOX_WEBHOOK_URL: %s %s not sent", final.kind, final.id)
            return
        event_id, body = event_body(final, int(now))
        self._store.enqueue(event_id, body, now)
        if pattern is Webhooks.TWICE:
            self._store.enqueue(event_id, body, now + REPEAT_GAP_SECONDS)
        elif pattern is Webhooks.STALE_FAILURE:
            stale = final.with_status("failed", STALE_FAILURE_CODE)
            stale_id, stale_body = event_body(stale, final.created)  # it happened before the success
            self._store.enqueue(stale_id, stale_body, now + STALE_GAP_SECONDS)

    def dispatch_due(self) -> None:
        """Start a send for every due delivery not already being sent."""
        for delivery in self._store.due_deliveries(time.time(), BATCH):
            if delivery.seq in self._sending:
                continue
            self._sending.add(delivery.seq)
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                error = await self._send(delivery)
            attempts = delivery.attempts + 1
            if error is None:
                self._store.delivery_done(delivery.seq, attempts, "delivered", None, time.time())
                log.info("delivered %s (attempt %d)", delivery.event_id, attempts)
            elif attempts >= self._settings.webhook_max_attempts:
                self._store.delivery_done(delivery.seq, attempts, "abandoned", error, time.time())
                log.warning("gave up on %s after %d attempts: %s", delivery.event_id, attempts, error)
            else:
                wait = min(self._settings.webhook_backoff_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
                self._store.delivery_done(delivery.seq, attempts, "pending", error, time.time() + wait)
                log.info("retrying %s in %.2f s: %s", delivery.event_id, wait, error)
        finally:
            self._sending.discard(delivery.seq)

    async def _send(self, delivery: Delivery) -> str | None:
        """POST one delivery; None when the receiver answered 2xx, else what went wrong."""
        assert self._url is not None
        body = delivery.body.encode()
        signature = sign(self._settings.webhook_secret.get_secret_value(), body, int(time.time()))
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        try:
            reply = await self._client.post(
                self._url, content=body, headers=headers, timeout=self._settings.webhook_timeout_seconds
            )
        except httpx.HTTPError as err:
            return f"{type(err).__name__}"
        return None if 200 <= reply.status_code < 300 else f"HTTP {reply.status_code}"
