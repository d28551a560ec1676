"""The loop that claims due jobs and runs them, woken by the database and by a poll.

Any number of workers (processes, replicas) share the queue: claims skip each other's rows, and a
claim is a lease, so the jobs of a worker killed mid-batch come back after `SUBMIT_LEASE_SECONDS`.
A new transaction's event notifies `payments_transaction_events` (migration 0005), which wakes the
loop at once; the poll catches everything else (reconciler look-ups falling due, a lost
notification, a database that came back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import Gauge

from payments_common.offload import Offload
from transaction_service.listener import Connect, Listener
from transaction_service.processing.flow import Flow
from transaction_service.processing.store import Job, ProcessingStore

log = logging.getLogger("transaction_service.processing")
IN_FLIGHT = Gauge("processor_jobs_in_flight", "Jobs being submitted or looked up right now")


class Worker:
    """Claims at most `concurrency` jobs at a time, `batch` per claim, and runs them on the flow."""

    def __init__(
        self,
        flow: Flow,
        store: ProcessingStore,
        offload: Offload,
        connect: Connect | None,
        *,
        batch: int,
        concurrency: int,
        lease_seconds: float,
        poll_seconds: float,
    ):
        self._flow = flow
        self._store = store
        self._offload = offload
        self._batch = batch
        self._concurrency = concurrency
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._listener = (
            Listener(connect, offload, self._wake.set, lambda: log.warning("lost LISTEN; polling"))
            if connect is not None
            else None
        )
        self._running: set[asyncio.Task[None]] = set()
        flow.on_due = self._wake.set  # a webhook made a job due
        self.healthy = False  # the last claim reached the database

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop` is set, then let the running ones finish."""
        failing = False
        while not stop.is_set():
            if self._listener is not None and not self._listener.open:
                await self._listener.start()
            self._wake.clear()
            claimed = 0
            free = self._concurrency - len(self._running)
            if free > 0:
                try:
                    jobs = await self._offload(self._store.claim, min(self._batch, free), self._lease)
                except Exception as err:  # the database is away: keep polling, say so once
                    if not failing:
                        log.error("cannot claim jobs: %s", type(err).__name__)
                    failing, self.healthy = True, False
                    jobs = []
                else:
                    failing, self.healthy = False, True
                claimed = len(jobs)
                for job in jobs:
                    self._start(job)
            if claimed and claimed == free:
                await asyncio.sleep(0)  # more may be due: claim again once a slot frees
                if len(self._running) < self._concurrency:
                    continue
            await self._idle(stop)
        await self._drain()

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._flow.run(job))
        IN_FLIGHT.inc()
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        IN_FLIGHT.dec()
        self._wake.set()  # a slot is free

    async def _idle(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _drain(self, grace_seconds: float = 10.0) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._running:
            log.info("waiting for %d jobs in flight", len(self._running))
            _done, pending = await asyncio.wait(set(self._running), timeout=grace_seconds)
            for task in pending:  # their leases bring them back to the next worker
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
