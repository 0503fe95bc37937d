"""HTTP routes: webhooks in, health and metrics out, Slack events to Bolt."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import IntegrationError
from bot.metrics import CONTENT_TYPE
from handlers.notice_senders import vapid_public_key
from handlers.status_page import status_page_router
from handlers.unsubscribe_routes import add_unsubscribe_routes
from handlers.webhook_intake import accept_delivery, read_limited

if TYPE_CHECKING:
    from handlers.app import Firebell

log = logging.getLogger(__name__)

SLACK_CHECK_TTL = 60.0


def create_web_app(
    firebell: Firebell, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]
) -> FastAPI:
    app = FastAPI(
        title="firebell",
        summary="Alerts open Slack incident channels.",
        lifespan=lifespan,
    )
    app.state.firebell = firebell
    slack_check: dict[str, Any] = {"at": 0.0, "result": None}

    @app.post(
        "/webhooks/{source}",
        status_code=202,
        responses={400: {"description": "Not a valid payload"}, 401: {"description": "Bad signature"}},
    )
    async def webhook(source: str, request: Request) -> JSONResponse:
        """Accept one alert delivery; 202 once it is stored.

        ``WebhookFastPath`` answers these requests before FastAPI sees them;
        this route documents them and serves the app when it runs without it.
        """
        body = await read_limited(request.headers, request.receive)
        answer = await accept_delivery(firebell, source, body, request.headers)
        return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The database answers and the Slack token is valid."""
        checks: dict[str, str] = {}
        ready = True
        try:
            async with firebell.engine.connect() as connection:
                await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=5)
            checks["database"] = "ok"
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            ready = False
            checks["database"] = f"unreachable: {type(exc).__name__}"
        if firebell.chat is None:
            ready = False
            checks["slack"] = "not configured: set SLACK_BOT_TOKEN"
        else:
            now = time.monotonic()
            if slack_check["result"] is None or now - slack_check["at"] > SLACK_CHECK_TTL:
                try:
                    await firebell.chat.check_auth()
                    slack_check["result"] = "ok"
                except IntegrationError as exc:
                    slack_check["result"] = f"failing: {exc.code or exc}"
                slack_check["at"] = now
            checks["slack"] = slack_check["result"]
            ready = ready and checks["slack"] == "ok"
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format."""
        try:
            firebell.metrics.set_pending("jobs", await firebell.jobs.pending_count())
            firebell.metrics.set_pending("deliveries", await firebell.ingest.pending_count())
        except Exception:
            log.exception("could not count pending work for /metrics")
        return Response(firebell.metrics.render(), media_type=CONTENT_TYPE)

    # Only a verified request reaches Bolt over HTTP; Socket Mode needs no secret.
    bolt_handler = (
        AsyncSlackRequestHandler(firebell.bolt)
        if firebell.bolt is not None and firebell.settings.slack_signing_secret
        else None
    )

    @app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        if bolt_handler is None:
            return JSONResponse(
                {"error": "Slack HTTP mode is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET"},
                status_code=503,
            )
        return await bolt_handler.handle(request)

    add_unsubscribe_routes(app, firebell)
    settings = firebell.settings
    app.include_router(
        status_page_router(
            firebell.engine,
            settings.config.notices,
            firebell.clock,
            public_url=settings.public_url,
            vapid_public_key=vapid_public_key(settings),
        )
    )
    return app
