"""Slack listeners (Bolt): the ``/incident`` command, the card's buttons, the
declare and update forms, the App Home tab and 📌 reactions — and the one
error handler that turns any failure into a friendly reply."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.severity import Severity
from bot.errors import UserError
from bot.incidents.card import (
    ACTION_ACKNOWLEDGE,
    ACTION_ESCALATE,
    ACTION_POST_UPDATE,
    ACTION_RESOLVE,
    ACTION_SNOOZE,
)
from bot.incidents.commands import IncidentCommands
from bot.incidents.model import Actor
from bot.incidents.response import Declaration
from bot.incidents.views import DECLARE_CALLBACK, UPDATE_CALLBACK
from bot.notices import views as notice_views
from bot.notices.chat_flow import NoticeChat
from bot.ports import ChatChannel
from bot.runbooks import chat_flow
from bot.runbooks.chat_flow import ClickResult, RunbookChat
from bot.settings import FirebellConfig
from handlers.incident_command import CommandSlots, handle_incident_command
from handlers.slack_auth import BotAuthorization
from handlers.slack_errors import answer_failures, failure_message

log = logging.getLogger(__name__)

PIN_REACTIONS = {"pushpin", "round_pushpin"}
Snooze = Callable[[int, str], Awaitable[datetime]]


def actor_from(body: dict[str, Any]) -> Actor:
    user = body.get("user") or {}
    name = str(user.get("username") or user.get("name") or user.get("id") or "someone")
    return Actor(name=name, slack_user_id=user.get("id"))


def button_number(body: dict[str, Any], problem: str) -> int:
    """The number a button carries as its value (an incident id, a run id)."""
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise UserError(problem) from exc


def incident_id_from(body: dict[str, Any]) -> int:
    return button_number(body, "This button does not belong to an incident.")


def _input(values: dict[str, Any], block: str) -> Any:
    element = values.get(block, {}).get("value", {})
    if "selected_option" in element:
        option = element["selected_option"]
        return option["value"] if option else None
    if "selected_options" in element:
        return [o["value"] for o in element["selected_options"] or []]
    return element.get("value")


def build_bolt_app(
    signing_secret: str | None,
    client: AsyncWebClient,
    commands: IncidentCommands,
    chat: ChatChannel,
    config: FirebellConfig,
    snooze: Snooze | None = None,
    authorization: BotAuthorization | None = None,
    runbooks: RunbookChat | None = None,
    notices: NoticeChat | None = None,
) -> AsyncApp:
    """The Bolt app. Without a signing secret it serves Socket Mode only (the
    HTTP route refuses Slack requests it cannot verify)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        raise_error_for_unhandled_request=False,
        authorize=authorization.authorize if authorization is not None else None,
    )
    slots = CommandSlots(config.work.max_commands_in_flight)

    @app.command("/incident")
    async def incident(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await handle_incident_command(
            ack, body, respond, client, commands, chat, config, slots, runbooks, notices
        )

    def notice_flow() -> NoticeChat:
        if notices is None:
            raise UserError("Customer notices are not available in this firebell.")
        return notices

    @app.view(notice_views.FORM_CALLBACK)
    async def notice_form_submitted(ack: AsyncAck, view: dict[str, Any]) -> None:
        state = view["state"]["values"]
        values = {
            block: _input(state, block)
            for block in ("status", "impact", "components", "message", "next_update", "segments")
        }
        try:
            incident_id = int(json.loads(view.get("private_metadata") or "{}")["incident_id"])
            draft = await notice_flow().draft_from_form(incident_id, values)
            preview = notice_flow().preview(draft)
        except (UserError, KeyError, ValueError) as error:
            await ack(response_action="errors", errors={"message": str(error)[:150]})
            return
        await ack(response_action="update", view=preview)

    @app.view(notice_views.PREVIEW_CALLBACK)
    async def notice_confirmed(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        actor = actor_from(body)
        metadata = str(view.get("private_metadata") or "")
        try:
            draft = notice_views.draft_from_json(metadata)
            if draft.incident_id is None:
                raise UserError("This notice belongs to no incident.")
            await notice_flow().require_sender(draft.incident_id, actor)
        except UserError as error:
            await ack(response_action="update", view=notice_views.refusal_view(str(error)))
            return
        await ack()
        await answer_failures(None, _send_notice(metadata, actor, client))

    async def _send_notice(metadata: str, actor: Actor, client: AsyncWebClient) -> None:
        try:
            await notice_flow().send(metadata, actor)
        except UserError as error:
            if actor.slack_user_id:
                await client.chat_postMessage(channel=actor.slack_user_id, text=f":x: {error}")

    @app.action(notice_views.ACTION_APPROVE)
    async def notice_approved(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        notice_id = button_number(body, "This button does not belong to a notice.")
        channel = (body.get("channel") or {}).get("id")
        incident = await commands.find(channel, None)
        await notice_flow().approve(notice_id, actor_from(body), incident)
        await respond(
            text=f"Notice #{notice_id} approved; sending.", response_type="ephemeral", replace_original=False
        )

    def runbook_flow() -> RunbookChat:
        if runbooks is None:
            raise UserError("Runbooks are not available in this firebell.")
        return runbooks

    async def tell(respond: AsyncRespond, result: ClickResult) -> None:
        if result.text:
            await respond(text=result.text, response_type="ephemeral", replace_original=False)

    @app.action(chat_flow.ACTION_RUN)
    async def runbook_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        run_id = button_number(body, "This button does not belong to a runbook run.")
        await tell(respond, await runbook_flow().click_run(run_id, actor_from(body)))

    @app.action(chat_flow.ACTION_CANCEL)
    async def runbook_cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        run_id = button_number(body, "This button does not belong to a runbook run.")
        await tell(respond, await runbook_flow().click_cancel(run_id, actor_from(body)))

    @app.action(chat_flow.ACTION_APPROVE_STEP)
    async def runbook_approve_step(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        token = str((body.get("actions") or [{}])[0].get("value", ""))
        await tell(respond, await runbook_flow().click_approve_step(token, actor_from(body)))

    @app.action(ACTION_ACKNOWLEDGE)
    async def acknowledge(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await commands.acknowledge(incident_id_from(body), actor_from(body))

    @app.action(ACTION_RESOLVE)
    async def resolve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await commands.resolve(incident_id_from(body), actor_from(body))

    @app.action(ACTION_POST_UPDATE)
    async def post_update(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        form = await commands.update_form(incident_id_from(body))
        await client.views_open(trigger_id=body["trigger_id"], view=form)

    @app.action(ACTION_ESCALATE)
    async def escalate(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        what = await commands.escalate(incident_id_from(body), actor_from(body))
        await respond(text=f"{what}.", response_type="ephemeral", replace_original=False)

    @app.action(ACTION_SNOOZE)
    async def snooze_reminder(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        if snooze is None:
            raise UserError("Reminders are not running in this firebell.")
        due = await snooze(incident_id_from(body), actor_from(body).name)
        await respond(
            text=f"Snoozed: the next reminder is at {due:%H:%M} UTC.",
            response_type="ephemeral",
            replace_original=False,
        )

    @app.view(DECLARE_CALLBACK)
    async def declared(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        values = view["state"]["values"]
        title = str(_input(values, "title") or "").strip()
        service = str(_input(values, "service") or "").strip()
        errors = {}
        if not title:
            errors["title"] = "Give the incident a title."
        if not service:
            errors["service"] = "Which service is affected?"
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        await answer_failures(None, _declare(body, values, view, client))

    async def _declare(
        body: dict[str, Any], values: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        title = str(_input(values, "title") or "").strip()
        service = str(_input(values, "service") or "").strip()
        options = _input(values, "options") or []
        declaration = Declaration(
            title=title,
            severity=Severity(int(_input(values, "severity") or 3)),
            service=service,
            description=_input(values, "description"),
            private="private" in options,
            page="page" in options,
        )
        actor = actor_from(body)
        try:
            number = await commands.declare(declaration, actor)
        except UserError as error:
            if actor.slack_user_id:
                await client.chat_postMessage(channel=actor.slack_user_id, text=f":x: {error}")
            return
        origin = view.get("private_metadata") or ""
        if actor.slack_user_id and origin:
            await client.chat_postEphemeral(
                channel=origin,
                user=actor.slack_user_id,
                text=f"Incident #{number} declared; its channel is being opened and you are invited.",
            )

    @app.view(UPDATE_CALLBACK)
    async def updated(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = str(_input(view["state"]["values"], "update") or "").strip()
        if not text:
            await ack(response_action="errors", errors={"update": "The update needs some text."})
            return
        await ack()
        await answer_failures(
            None, commands.post_update(int(view["private_metadata"]), text, actor_from(body))
        )

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user = str(event["user"])

        async def publish() -> None:
            await client.views_publish(user_id=user, view=await commands.home(user))

        await answer_failures(None, publish())

    @app.event("reaction_added")
    async def pinned(event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if event.get("reaction") in PIN_REACTIONS and item.get("type") == "message":
            pin = commands.pin_message(str(item["channel"]), str(item["ts"]), str(event["user"]))
            await answer_failures(None, _discard(pin))

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
        message = failure_message(error)
        if body.get("response_url"):
            await respond(text=message, response_type="ephemeral", replace_original=False)
        else:
            log.info("could not tell the user: %s", message)

    return app


async def _discard(work: Awaitable[object]) -> None:
    await work
