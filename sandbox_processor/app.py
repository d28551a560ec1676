"""The HTTP+JSON API (Starlette): routes translate requests into `Processor` calls, nothing more.

`POST /v1/charges`, `POST /v1/refunds` (with `Idempotency-Key`), `GET /v1/charges?reference=`,
`GET /v1/refunds?reference=`, and `GET /healthz`. Every `/v1` call needs
`Authorization: Bearer <SANDBOX_API_KEY>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox_processor.behaviour import ApiError, missing_object
from sandbox_processor.config import SandboxSettings
from sandbox_processor.processing import Answer, Processor
from sandbox_processor.store import Store
from sandbox_processor.webhooks import Dispatcher

MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger("sandbox_processor")


def _json(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(err: ApiError) -> Response:
    return _json(err.status, err.to_json())


async def _until_disconnected(request: Request) -> None:
    """Return when the client closes the connection (the body was already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class Api:
    """The endpoints, bound to one store and one processor."""

    def __init__(self, settings: SandboxSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._processor = Processor(store, settings)
        self._api_key = settings.api_key.get_secret_value().encode()

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self._api_key)

    async def health(self, request: Request) -> Response:
        """Unauthenticated: 200 while the storage answers, 503 otherwise."""
        try:
            self._store.ping()
        except Exception:
            log.exception("storage check failed")
            return _json(503, '{"status": "unavailable"}')
        return _json(200, '{"status": "ok"}')

    async def charges(self, request: Request) -> Response:
        """`POST` creates a charge, `GET ?reference=` looks one up."""
        return await self._endpoint(request, "charge")

    async def refunds(self, request: Request) -> Response:
        """`POST` creates a refund of a charge, `GET ?reference=` looks one up."""
        return await self._endpoint(request, "refund")

    async def _endpoint(self, request: Request, kind: str) -> Response:
        if self._settings.latency_ms:  # a network and processor's own time, for the benchmarks
            await asyncio.sleep(self._settings.latency_ms / 1000)
        if not self._authorized(request):
            return _error(
                ApiError(401, "authentication_error", "api_key_invalid", "invalid or missing API key")
            )
        try:
            if request.method in ("GET", "HEAD"):
                return self._lookup(request, kind)
            payload = await self._payload(request)
            answer = await self._processor.create(
                kind, request.url.path, request.headers.get("idempotency-key"), payload
            )
        except ApiError as err:
            return _error(err)
        if answer.hold:
            return await self._withhold(request, answer)
        return _json(
            answer.status_code, answer.body, {"Idempotent-Replayed": "true"} if answer.replayed else None
        )

    def _lookup(self, request: Request, kind: str) -> Response:
        reference = request.query_params.get("reference")
        if not reference:
            raise ApiError(
                400, "invalid_request_error", "parameter_missing", "reference: required", "reference"
            )
        record = self._processor.lookup(kind, reference)
        if record is None:
            raise missing_object(kind, reference)
        return _json(200, json.dumps(record.to_json()))

    async def _payload(self, request: Request) -> dict[str, Any]:
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            raise ApiError(413, "invalid_request_error", "body_too_large", f"at most {MAX_BODY_BYTES} bytes")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, "invalid_request_error", "body_too_large", f"at most {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            raise ApiError(400, "invalid_request_error", "body_invalid", "the body must be a JSON object")
        return payload

    async def _withhold(self, request: Request, answer: Answer) -> Response:
        """`pm_card_timeout`: the charge is committed; the reply never comes while the client waits.

        The hold ends when the client gives up, or after SANDBOX_TIMEOUT_HOLD_SECONDS with a 504
        (as a load balancer in front of a stuck processor answers), so no request is held forever.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_until_disconnected(request), self._settings.timeout_hold_seconds)
            return Response(status_code=499)  # nobody is listening any more; never sent
        error = ApiError(504, "api_error", "gateway_timeout", "the processor did not answer in time")
        return _error(error)


def build_app(settings: SandboxSettings) -> Starlette:
    """The ASGI app; opens the store now and runs the webhook dispatcher while it is served."""
    store = Store(settings.db_path)
    api = Api(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            dispatcher = asyncio.create_task(Dispatcher(store, settings, client).run())
            log.info("sandbox processor ready", extra={"db_path": str(settings.db_path)})
            try:
                yield
            finally:
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher
                store.close()

    routes = [
        Route("/healthz", api.health, methods=["GET"]),
        Route("/v1/charges", api.charges, methods=["GET", "POST"]),
        Route("/v1/refunds", api.refunds, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
