"""``/incident <subcommand>``: parse, acknowledge at once, then do the work.

Slack wants an answer within 3 seconds. Parsing is instant, so a wrong
command is answered in the acknowledgement itself; everything else is
acknowledged first and answered afterwards through ``response_url`` (or in
the channel, for state changes the whole channel should see).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands.grammar import Command, help_text, parse
from bot.errors import UserError
from bot.incidents.commands import IncidentCommands
from bot.incidents.model import Actor
from bot.incidents.views import Reply, declare_modal
from bot.notices.chat_flow import NoticeChat
from bot.ports import ChatChannel
from bot.runbooks.chat_flow import RunbookChat
from bot.settings import FirebellConfig
from handlers.slack_errors import answer_failures

BUSY = (
    ":hourglass_flowing_sand: firebell is busy with other commands and did nothing with this one. "
    "Please run `/incident {text}` again in a minute."
)


class CommandSlots:
    """Bounds the commands between their acknowledgement and the end of their
    database work.

    The acknowledgement goes out before the work, so nothing else stops a
    burst from queueing thousands of commands behind the database: they wait
    for a pooled connection until it times out, starve the job worker of
    connections, and the growing heap makes every full garbage collection stop
    the event loop (acknowledgements included) for longer. Past the limit a
    command is refused in its own acknowledgement: at once, having changed
    nothing, so the responder knows to try again.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def take(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def give(self) -> None:
        self.in_use -= 1


def command_actor(body: dict[str, Any]) -> Actor:
    return Actor(
        name=str(body.get("user_name") or body.get("user_id") or "someone"), slack_user_id=body.get("user_id")
    )


async def handle_incident_command(
    ack: AsyncAck,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    commands: IncidentCommands,
    chat: ChatChannel,
    config: FirebellConfig,
    slots: CommandSlots | None = None,
    runbooks: RunbookChat | None = None,
    notices: NoticeChat | None = None,
) -> None:
    try:
        command = parse(str(body.get("text", "")))
    except UserError as error:
        await ack(response_type="ephemeral", text=str(error))
        return
    if command.name == "help":
        await ack(response_type="ephemeral", text=help_text())
        return
    if command.name == "declare":
        await ack()
        await answer_failures(respond, open_declare_form(command, body, client, commands, config))
        return
    if command.name == "notify":
        await ack()
        await answer_failures(respond, open_notice_form(command, body, client, commands, notices))
        return
    if slots is not None and not slots.take():
        await ack(response_type="ephemeral", text=BUSY.format(text=str(body.get("text", "")).strip()))
        return
    await ack()
    await answer_failures(respond, run_and_deliver(command, body, respond, commands, chat, slots, runbooks))


async def open_declare_form(
    command: Command,
    body: dict[str, Any],
    client: AsyncWebClient,
    commands: IncidentCommands,
    config: FirebellConfig,
) -> None:
    # The trigger_id expires 3 s after the command: open the form right away.
    await commands.permissions.require("declare", command_actor(body))
    await client.views_open(
        trigger_id=body["trigger_id"],
        view=declare_modal(command.text, sorted(config.services), body.get("channel_id")),
    )


async def open_notice_form(
    command: Command,
    body: dict[str, Any],
    client: AsyncWebClient,
    commands: IncidentCommands,
    notices: NoticeChat | None,
) -> None:
    if notices is None:
        raise UserError("Customer notices are not available in this firebell.")
    incident = await commands.find(body.get("channel_id"), command.incident)
    form = await notices.form(incident, command_actor(body), command.text)
    await client.views_open(trigger_id=body["trigger_id"], view=form)


async def run_and_deliver(
    command: Command,
    body: dict[str, Any],
    respond: AsyncRespond,
    commands: IncidentCommands,
    chat: ChatChannel,
    slots: CommandSlots | None = None,
    runbooks: RunbookChat | None = None,
) -> None:
    try:
        reply = await run(command, body, commands, runbooks)
    finally:
        if slots is not None:
            slots.give()  # answering waits on Slack, not on the database
    await deliver(reply, body, respond, chat)


async def run(
    command: Command, body: dict[str, Any], commands: IncidentCommands, runbooks: RunbookChat | None = None
) -> Reply:
    actor = command_actor(body)
    incident = await commands.find(body.get("channel_id"), command.incident)
    number = f"#{incident.id}"
    name = command.name
    if name == "status":
        assert command.phase is not None
        await commands.set_phase(incident.id, command.phase, command.text, actor)
        return Reply(f"{number} is now {command.phase.value}.")
    if name == "sev":
        assert command.severity is not None
        await commands.set_severity(incident.id, command.severity, actor)
        return Reply(f"{number} is now {command.severity.label}.")
    if name == "ack":
        await commands.acknowledge(incident.id, actor)
        return Reply(f"{number} acknowledged.")
    if name == "resolve":
        await commands.resolve(incident.id, actor, command.text)
        return Reply(f"{number} resolved.")
    if name == "reopen":
        await commands.reopen(incident.id, actor)
        return Reply(f"{number} reopened.")
    if name == "role":
        assert command.role is not None and command.user_id is not None
        await commands.assign_role(incident.id, command.role, command.user_id, actor)
        return Reply(f"<@{command.user_id}> is now the {command.role.value} of {number}.")
    if name == "roles":
        return await commands.roles(incident.id)
    if name == "escalate":
        what = await commands.escalate(incident.id, actor, user_id=command.user_id, service=command.service)
        return Reply(f"{what}.")
    if name == "update":
        await commands.post_update(incident.id, command.text, actor)
        return Reply(f"Update posted in {number}; the update timer starts again.")
    if name == "timeline":
        if command.add:
            await commands.add_to_timeline(incident.id, command.text, actor)
            return Reply(f"Added to the timeline of {number}.")
        return await commands.timeline(incident.id)
    if name == "summary":
        return await commands.summary(incident.id)
    if name == "postmortem":
        return await commands.postmortem(incident.id)
    if name == "diag":
        if command.diag_kind == "http":
            return await commands.diagnose_http(incident.id, command.urls, command.count, actor)
        if command.diag_kind == "timeouts":
            return await commands.diagnose_timeouts(incident.id, actor)
        if command.diag_kind == "resources":
            assert command.target is not None
            return await commands.diagnose_resources(incident.id, command.target, actor)
        if command.diag_kind == "monitors":
            return await commands.diagnose_monitors(incident.id, command.check, actor)
        assert command.log_name is not None
        return await commands.diagnose_logs(incident.id, command.log_name, actor)
    if name == "runbook":
        if runbooks is None:
            raise UserError("Runbooks are not available in this firebell.")
        if command.runbook_action == "list":
            return runbooks.list_reply(incident)
        assert command.runbook_name is not None
        return await runbooks.propose(incident, command.runbook_name, command.text, actor)
    raise UserError(f"`{name}` cannot be run here.")


async def deliver(reply: Reply, body: dict[str, Any], respond: AsyncRespond, chat: ChatChannel) -> None:
    """Answer the person who asked; files go into the channel the command came from."""
    for attachment in reply.attachments if body.get("channel_id") else ():
        await chat.upload_file(
            str(body["channel_id"]), attachment.filename, attachment.title, attachment.content
        )
    if reply.file is not None and body.get("channel_id"):
        await chat.upload_file(
            str(body["channel_id"]),
            reply.file.filename,
            reply.file.title,
            reply.file.content,
            comment=reply.text if reply.in_channel else None,
        )
        if reply.in_channel:
            return
    await respond(
        text=reply.text,
        blocks=reply.blocks or None,
        response_type="in_channel" if reply.in_channel else "ephemeral",
        replace_original=False,
    )
