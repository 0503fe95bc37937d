"""Slack listeners (Bolt): the incident card's buttons, and the one error
handler that turns any failure into a friendly reply."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UserError
from bot.incidents.card import ACTION_ACKNOWLEDGE, ACTION_RESOLVE
from bot.incidents.commands import IncidentCommands
from bot.incidents.model import Actor

log = logging.getLogger(__name__)


def actor_from(body: dict[str, Any]) -> Actor:
    user = body.get("user") or {}
    name = str(user.get("username") or user.get("name") or user.get("id") or "someone")
    return Actor(name=name, slack_user_id=user.get("id"))


def incident_id_from(body: dict[str, Any]) -> int:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise UserError("This button does not belong to an incident.") from exc


def build_bolt_app(
    signing_secret: str | None, client: AsyncWebClient, commands: IncidentCommands
) -> AsyncApp:
    """The Bolt app. Without a signing secret it serves Socket Mode only (the
    HTTP route refuses Slack requests it cannot verify)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        raise_error_for_unhandled_request=False,
    )

    @app.action(ACTION_ACKNOWLEDGE)
    async def acknowledge(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await commands.acknowledge(incident_id_from(body), actor_from(body))

    @app.action(ACTION_RESOLVE)
    async def resolve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await commands.resolve(incident_id_from(body), actor_from(body))

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
        if isinstance(error, UserError):
            message = str(error)
        else:
            ref = secrets.token_hex(3)
            log.error("Slack request failed (ref %s)", ref, exc_info=error)
            message = f":x: That failed (ref {ref}). The details are in firebell's log."
        if body.get("response_url"):
            await respond(text=message, response_type="ephemeral", replace_original=False)

    return app
