"""The processor flow: submit, reconcile and apply webhooks, all settling through one path.

A job is in one of two stages. Never sent (`submitted_at` NULL): PENDING -> PROCESSING first,
then the submission under `tx_<id>:payment` (or `:refund`), then its answer applied. Sent: the
reconciler's stage, also where a worker killed mid-submission leaves a job: the processor is asked
by our reference; one it never received is submitted again with the same key (so never charged
twice), until the give-up time makes it FAILED `processor_timeout`. Whatever says something (an
answer, a look-up, a webhook) goes through `settle`: kept as an event, then applied only to a
PROCESSING transaction, so a final status never changes.

A webhook is kept (once per event id) but not applied as it stands: webhooks arrive in any order
(a stale failure may overtake the success it predates), so a new one makes its job due at once and
the reconciler's look-up, the processor's current record, settles it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from uuid import UUID

from prometheus_client import Counter

from payments_common.offload import Offload
from transaction_service.connectors import (
    Connector,
    Outcome,
    PaymentRequest,
    ProcessorError,
    ProcessorResult,
    RefundRequest,
)
from transaction_service.domain import FINAL, Status, TxType
from transaction_service.processing.store import Applied, Job, ProcessingStore

log = logging.getLogger("transaction_service.processing")
TIMEOUT_FAILURE = "processor_timeout"
TARGETS = {Outcome.APPROVED: Status.COMPLETED, Outcome.DECLINED: Status.FAILED}

RESULTS = Counter(
    "processor_results_total",
    "What the processor said, by source (answer, lookup, webhook) and outcome",
    ["source", "outcome"],
)
SETTLED = Counter("processor_settled_total", "Transactions the flow made final, by status", ["status"])


class Flow:
    """One processor's submitter, reconciler and webhook handler over the flow's statements."""

    def __init__(
        self,
        store: ProcessingStore,
        connector: Connector,
        offload: Offload,
        *,
        reconcile_after_seconds: float,
        give_up_seconds: float,
    ):
        self._store = store
        self._connector = connector
        self._offload = offload
        self._reconcile_after = reconcile_after_seconds
        self._give_up = give_up_seconds
        self.actor = f"processor:{store.processor}"
        self.on_due: Callable[[], None] = lambda: None  # the worker's wake-up

    async def run(self, job: Job) -> None:
        """Take a claimed job one step on; errors are logged and the lease brings it back."""
        try:
            applied = await self._step(job)
        except ProcessorError as err:  # ours to fix (credentials, a reused key): loud, not a result
            log.error("the processor refused %r as misconfigured: %s", job, err)
            await self._offload(self._store.reschedule, job.id, self._reconcile_after)
        except Exception:
            log.exception("processing %r failed; it is tried again later", job)
            with contextlib.suppress(Exception):  # else its lease brings it back
                await self._offload(self._store.reschedule, job.id, self._reconcile_after)
        else:  # still PROCESSING after this step: the reconciler asks again later
            if applied is not None and applied.status is Status.PROCESSING:
                await self._offload(self._store.reschedule, job.id, self._reconcile_after)

    async def _step(self, job: Job) -> Applied | None:
        """The job one step on; what its last settlement left (None: nothing was settled)."""
        if job.status in FINAL:
            await self._offload(self._store.drop, job.id)
            return None
        if job.submitted_at is None:
            if not await self._offload(self._store.start, job.id, self.actor):
                return None
            return await self.settle(job.id, await self._submit(job), source="answer")
        return await self._reconcile(job)

    async def _reconcile(self, job: Job) -> Applied:
        found = await (
            self._connector.get_refund(job.id)
            if job.type is TxType.REFUND
            else self._connector.get_payment(job.id)
        )
        assert job.submitted_at is not None
        waited = (job.claimed_at - job.submitted_at).total_seconds()
        if found.outcome is not Outcome.NOT_FOUND:
            return await self.settle(job.id, found, source="lookup")
        if waited >= self._give_up:
            reason = f"the processor never received it in {waited:.0f} s"
            return await self.settle(job.id, found, source="lookup", give_up=reason)
        await self.settle(job.id, found, source="lookup")
        log.info("%r never reached the processor; submitting it again under the same key", job)
        return await self.settle(job.id, await self._submit(job), source="answer")

    async def _submit(self, job: Job) -> ProcessorResult:
        if job.type is TxType.REFUND:
            assert job.refund_of is not None
            return await self._connector.submit_refund(
                RefundRequest(job.id, job.refund_of, job.amount_minor, job.currency, job.payment_processor_id)
            )
        assert job.payment_method is not None
        return await self._connector.submit_payment(
            PaymentRequest(job.id, job.amount_minor, job.currency, job.payment_method, job.description)
        )

    async def settle(
        self,
        tx_id: UUID | None,
        result: ProcessorResult,
        *,
        source: str,
        event_id: str | None = None,
        give_up: str | None = None,
        apply: bool = True,
    ) -> Applied:
        """Keep `result` as an event and apply it (unless not `apply`)."""
        RESULTS.labels(source, result.outcome.value).inc()
        target: Status | None
        failure: str | None
        if give_up:
            target, failure = Status.FAILED, TIMEOUT_FAILURE
        else:
            target, failure = (TARGETS.get(result.outcome) if apply else None), result.failure_code
        reason = give_up or _reason(source, result, event_id, failure)
        applied = await self._offload(
            self._store.apply,
            tx_id,
            result,
            source=source,
            target=target,
            actor=self.actor,
            reason=reason,
            event_id=event_id,
            failure_code=failure,
        )
        if applied.changed_to is not None:
            SETTLED.labels(applied.changed_to.value).inc()
            log.info("%s is %s (%s)", tx_id, applied.changed_to.value, reason)
        return applied

    async def webhook(self, headers: Mapping[str, str], body: bytes) -> Applied:
        """A processor's webhook, verified by the connector (raises WebhookRejected), then kept; a new
        one about a PROCESSING transaction makes its look-up due now.
        """
        event = self._connector.parse_webhook(headers, body)
        result = ProcessorResult(
            event.outcome,
            event.reference,
            processor_id=event.processor_id,
            failure_code=event.failure_code,
            detail=event.event_type,
            raw=event.raw,
        )
        applied = await self.settle(
            event.transaction_id, result, source="webhook", event_id=event.event_id, apply=False
        )
        if applied.recorded and applied.status is Status.PROCESSING and event.transaction_id is not None:
            await self._offload(self._store.reschedule, event.transaction_id, 0.0)
            self.on_due()
        return applied


def _reason(source: str, result: ProcessorResult, event_id: str | None, failure: str | None) -> str:
    said = {"answer": "the processor answered", "lookup": "the processor's record", "webhook": "webhook"}
    text = f"{said[source]} {event_id}" if event_id else said[source]
    return f"{text}: {result.outcome.value.lower()}" + (f" ({failure})" if failure else "")
