"""The HTTP side of the processing worker: the processor's webhooks and the probes.

`POST /webhooks/<processor>` takes the raw body (the signature covers its exact bytes) to the
connector, which checks the signature and the replay window; a verified event is kept (once per
event id), its payment's look-up made due now, and answered at once: the reconciler's path settles
it from the processor's current record, so webhooks may arrive in any order. Answers: 200 for an
event kept or a repeat (so the processor stops resending it), 400 for one refused (it changes
nothing), 503 with `Retry-After` when the database cannot take it now (the processor resends it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payments_common.errors import DomainError
from transaction_service.connectors import WebhookRejected
from transaction_service.processing.flow import Flow

log = logging.getLogger("transaction_service.processing.webhooks")
MAX_WEBHOOK_BYTES = 64 * 1024
WEBHOOKS = Counter("processor_webhooks_total", "Webhooks received, by result", ["result"])


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers or None)


def build_app(flow: Flow, processor: str, ready: Callable[[], bool]) -> Starlette:
    """The webhook endpoint of `processor` and the probes (`ready`: the worker reaches the database)."""

    async def webhook(request: Request) -> Response:
        if request.path_params["processor"] != processor:
            return _error(404, "not_found", "no such processor here")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
            WEBHOOKS.labels("too_large").inc()
            return _error(413, "too_large", f"a webhook is at most {MAX_WEBHOOK_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            WEBHOOKS.labels("too_large").inc()
            return _error(413, "too_large", f"a webhook is at most {MAX_WEBHOOK_BYTES} bytes")
        try:
            applied = await flow.webhook(request.headers, body)
        except WebhookRejected as err:
            WEBHOOKS.labels(err.problem.value.lower()).inc()
            peer = request.client.host if request.client else ""
            log.warning("webhook refused: %s", err, extra={"peer": peer})
            return _error(400, err.problem.value.lower(), str(err))
        except DomainError as err:  # the database is away or busy: nothing was kept, ask again
            WEBHOOKS.labels("retry").inc()
            log.warning("webhook not taken now: %s", err)
            return _error(503, "unavailable", "try again later", **{"Retry-After": "5"})
        result = "recorded" if applied.recorded else "duplicate"
        WEBHOOKS.labels(result).inc()
        return JSONResponse({"received": True, "result": result})

    async def live(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readiness(_request: Request) -> Response:
        if ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": "the database cannot be reached"}, 503)

    return Starlette(
        routes=[
            Route("/webhooks/{processor}", webhook, methods=["POST"]),
            Route("/healthz", live),
            Route("/readyz", readiness),
        ]
    )
