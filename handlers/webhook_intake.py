"""``POST /webhooks/{source}``: verify, parse, store, answer.

``accept_delivery`` is the route's whole behaviour, free of any web
framework. ``WebhookFastPath`` serves it as plain ASGI in front of FastAPI:
webhooks arrive in bursts (an alert storm is exactly when they matter), and
FastAPI's routing, dependency solving and middleware layers cost more per
request than everything firebell itself does to accept a delivery. The
FastAPI route (kept for the OpenAPI document) calls the same function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.errors import InvalidRequest

if TYPE_CHECKING:
    from handlers.app import Firebell

log = logging.getLogger(__name__)

PREFIX = "/webhooks/"
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict[str, str]
    headers: tuple[tuple[str, str], ...] = ()

    def encoded(self) -> bytes:
        # Byte for byte what Starlette's JSONResponse writes.
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


TOO_LARGE = WebhookAnswer(413, {"error": "body larger than 1 MiB"})


async def accept_delivery(
    firebell: Firebell, source: str, body: bytes | None, headers: Mapping[str, str]
) -> WebhookAnswer:
    """Everything the webhook route does once the body is read.

    ``body`` is None when it was larger than ``MAX_BODY``; ``headers`` has
    lower-case names.
    """
    intake = firebell.sources.get(source)
    if intake is None:
        return WebhookAnswer(
            404, {"error": f"unknown source {source!r}; use one of {sorted(firebell.sources)}"}
        )
    deliveries = firebell.metrics.deliveries
    if body is None:
        deliveries.labels(source, "invalid").inc()
        return TOO_LARGE
    try:
        intake.verify(body, headers)
    except InvalidRequest as exc:
        deliveries.labels(source, "rejected").inc()
        log.warning("refused a %s webhook: %s", source, exc.reason)
        return WebhookAnswer(exc.status, {"error": exc.reason})
    try:
        events = intake.parse(body, headers)
    except InvalidRequest as exc:
        deliveries.labels(source, "invalid").inc()
        return WebhookAnswer(exc.status, {"error": exc.reason})
    if not events:
        deliveries.labels(source, "ignored").inc()
        return WebhookAnswer(202, {"status": "ignored", "reason": "nothing to act on"})
    try:
        is_new = await firebell.writer.store(source, events[0].delivery_key, events)
    except Exception:
        deliveries.labels(source, "error").inc()
        log.exception("could not store a %s delivery", source)
        return WebhookAnswer(
            503, {"error": "could not store the delivery; please retry"}, (("retry-after", "5"),)
        )
    outcome = "accepted" if is_new else "duplicate"
    deliveries.labels(source, outcome).inc()
    return WebhookAnswer(202, {"status": outcome})


class WebhookFastPath:
    """Serves ``POST /webhooks/{source}`` itself; everything else goes to ``app``."""

    def __init__(self, firebell: Firebell, app: ASGIApp) -> None:
        self.firebell = firebell
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        source = scope["path"][len(PREFIX) :]
        if not source or "/" in source:
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        body = await read_limited(headers, receive)
        answer = await accept_delivery(self.firebell, source, body, headers)
        await _respond(send, answer)


async def read_limited(headers: Mapping[str, str], receive: Receive) -> bytes | None:
    """The body, or None past MAX_BODY: read as it streams in, so an endless
    body is cut off instead of held in memory."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(send: Send, answer: WebhookAnswer) -> None:
    content = answer.encoded()
    raw_headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    raw_headers += [(name.encode(), value.encode()) for name, value in answer.headers]
    start: dict[str, Any] = {"type": "http.response.start", "status": answer.status, "headers": raw_headers}
    await send(start)
    await send({"type": "http.response.body", "body": content})
