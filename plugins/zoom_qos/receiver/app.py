"""The receiver of Zoom's event notifications: ``POST /webhooks/zoom`` and ``GET /health``.

Order of work for each request, so that nothing untrusted costs much and nothing trusted is lost:
read at most :data:`MAX_BODY_BYTES` of the body (413 past it, whatever Content-Length says); check
Zoom's signature over those raw bytes and the timestamp window (401, nothing stored); parse the
event (400 when it is not one); answer ``endpoint.url_validation`` (signed only, no storage work
on that path, well inside Zoom's 3 seconds); answer an event type we do not keep 200 without
storing it; store a kept one and answer 200 only once it is committed, 503 if the store failed
(Zoom retries a 5xx, never a 4xx). Every refusal is one counted log line that repeats neither a
header nor the body. It is not Airflow's API server: it is meant to face Zoom, behind the user's
HTTPS ingress (docs/webhooks.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoom_qos.warehouse.webhooks import STORED_EVENTS
from zoom_qos.zoom.webhooks import (
    MAX_BODY_BYTES,
    SIGNATURE_WINDOW_SECONDS,
    URL_VALIDATION,
    BodyTooLargeError,
    SignatureError,
    WebhookError,
    ZoomEvent,
    parse_event,
    signature_hash,
    url_validation_answer,
    verify_signature,
)

__all__ = ["PATH", "create_app"]

log = logging.getLogger(__name__)

PATH = "/webhooks/zoom"
#: What a refused or accepted request is counted as (the /health counters).
OUTCOMES = ("accepted", "duplicate", "url_validation", "unknown_event", "unsigned", "forged", "stale",
            "too_large", "bad_request", "store_failed")


def create_app(secret_token: str, store: Callable[[ZoomEvent], bool], *,
               clock: Callable[[], float] = time.time, window: float = SIGNATURE_WINDOW_SECONDS) -> Starlette:
    """The receiver; ``store`` commits an event and returns False for a duplicate (it runs in a
    thread: it is blocking database work)."""
    counts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))

    def refuse(outcome: str, status: int, why: str) -> Response:
        counts[outcome] += 1
        log.warning("Refused a webhook request (%s, HTTP %d): %s", outcome, status, why)
        return JSONResponse({"error": outcome}, status_code=status)

    async def receive(request: Request) -> Response:
        try:
            body = await _bounded_body(request)
            verify_signature(secret_token, request.headers, body, clock(), window)
            event = dataclasses.replace(parse_event(body, request.headers.get("x-zm-request-id")),
                                        signature_hash=signature_hash(request.headers))
        except BodyTooLargeError as error:
            return refuse("too_large", error.status, str(error))
        except SignatureError as error:
            return refuse(_signature_outcome(str(error)), error.status, str(error))
        except WebhookError as error:
            return refuse("bad_request", error.status, str(error))
        if event.event == URL_VALIDATION:
            try:
                answer = url_validation_answer(secret_token, event)
            except WebhookError as error:
                return refuse("bad_request", error.status, str(error))
            counts["url_validation"] += 1
            log.info("Answered Zoom's endpoint URL validation.")
            return JSONResponse(answer)
        if event.event not in STORED_EVENTS:
            counts["unknown_event"] += 1
            log.info("Accepted an event of a type not kept: %s", event.event)
            return Response(status_code=200)
        try:
            new = await run_in_threadpool(store, event)
        except Exception as error:  # any failure to store: Zoom must retry, so 5xx
            counts["store_failed"] += 1
            log.error("Could not store a %s event (%s); answered 503 so that Zoom retries it.",
                      event.event, type(error).__name__)
            return JSONResponse({"error": "store_failed"}, status_code=503)
        counts["accepted" if new else "duplicate"] += 1
        return Response(status_code=200)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "counts": dict(counts)})

    routes = [Route(PATH, receive, methods=["POST"]), Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes)


async def _bounded_body(request: Request) -> bytes:
    """The body, read no further than one byte past :data:`MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"Content-Length {int(declared):,} is over the {MAX_BODY_BYTES:,}-byte bound")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLargeError(f"body over the {MAX_BODY_BYTES:,}-byte bound")
        chunks.append(chunk)
    return b"".join(chunks)


def _signature_outcome(message: str) -> str:
    if message.startswith("unsigned") or message.startswith("no webhook"):
        return "unsigned"
    return "stale" if message.startswith("stale") else "forged"

