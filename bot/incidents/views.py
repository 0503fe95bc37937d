"""Block Kit for what responders ask to see: summary, timeline, roles, the
App Home, and the declare and status-update forms.

Pure functions. Slack's limits are kept: at most 50 blocks per message and
3,000 characters per section; content that does not fit is returned as a
file instead (``Reply.file``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.alerts.severity import Severity
from bot.incidents.card import STATUS_EMOJI, clip, escape, source_label
from bot.incidents.model import IncidentView, Phase, Role, Status
from bot.incidents.response import TimelineItem, duration_text

MAX_BLOCKS = 50
MAX_SECTION = 3000
# Past this much text a reply is a wall nobody reads on a phone at 3 a.m.
MAX_MESSAGE_TEXT = 12_000
DECLARE_CALLBACK = "incident_declare"
UPDATE_CALLBACK = "incident_update"


@dataclass(frozen=True)
class FileReply:
    filename: str
    title: str
    content: str | bytes


@dataclass(frozen=True)
class Reply:
    """What a command answers: text and blocks, maybe a file, maybe for everyone."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    # Instead of the blocks, when they do not fit.
    file: FileReply | None = None
    in_channel: bool = False
    # Alongside the message (a chart, say).
    attachments: tuple[FileReply, ...] = ()


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, MAX_SECTION)}]}


def fit(text: str, blocks: list[dict[str, Any]], file: FileReply) -> Reply:
    """The blocks when they fit in one message, else a short text plus the file."""
    too_long = any(
        len(b.get("text", {}).get("text", "")) > MAX_SECTION for b in blocks if b["type"] == "section"
    )
    total = sum(len(b.get("text", {}).get("text", "")) for b in blocks if b["type"] == "section")
    if len(blocks) <= MAX_BLOCKS and not too_long and total <= MAX_MESSAGE_TEXT:
        return Reply(text=text, blocks=blocks)
    return Reply(text=f"{text} It is long, so it is attached as a file.", file=file)


def role_line(roles: Mapping[Role, str]) -> str:
    parts = [
        f"{role.value}: <@{roles[role]}>" if role in roles else f"{role.value}: _nobody_" for role in Role
    ]
    return " · ".join(parts)


def timeline_line(item: TimelineItem) -> str:
    who = f" — {escape(item.actor)}" if item.actor else ""
    return f"`{item.at:%H:%M}` *{item.kind}* {escape(item.text)}{who}"


def timeline_reply(incident: IncidentView, items: Sequence[TimelineItem]) -> Reply:
    title = f"Timeline of #{incident.id} {incident.title}"
    lines = [timeline_line(item) for item in items] or ["_Nothing yet._"]
    blocks: list[dict[str, Any]] = [section(f"*{escape(title)}*")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > MAX_SECTION - 50:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    blocks.append(section("\n".join(chunk)))
    plain = "\n".join(
        f"{i.at:%Y-%m-%d %H:%M:%S} UTC [{i.kind}] {i.text}" + (f" — {i.actor}" if i.actor else "")
        for i in items
    )
    return fit(title, blocks, FileReply(f"incident-{incident.id}-timeline.txt", title, plain))


def roles_reply(incident: IncidentView, roles: Mapping[Role, str]) -> Reply:
    lines = [
        f"*{role.value.capitalize()}*: "
        + (
            f"<@{roles[role]}>"
            if role in roles
            else "_nobody — take it with `/incident role " + role.value + " @you`_"
        )
        for role in Role
    ]
    return Reply(
        text=f"Roles in #{incident.id}", blocks=[section(f"*Roles in #{incident.id}*\n" + "\n".join(lines))]
    )


def summary_reply(
    incident: IncidentView,
    roles: Mapping[Role, str],
    last_update: TimelineItem | None,
    recent: Sequence[TimelineItem],
    now: datetime,
) -> Reply:
    status = f"{STATUS_EMOJI[incident.status]} {incident.status.value}"
    fields = [
        f"*Severity*\n{incident.severity.label}",
        f"*Status*\n{status} · {incident.phase.value}",
        f"*Service*\n{escape(incident.service)}",
        f"*Duration*\n{duration_text(incident.opened_at, incident.resolved_at or now)}",
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"#{incident.id} {incident.title}", 150)},
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        section(f"*Roles* {role_line(roles)}"),
    ]
    if incident.description:
        blocks.append(section(f"*Description*\n{escape(incident.description)}"))
    if last_update is not None:
        ago = duration_text(last_update.at, now)
        by = escape(last_update.actor or "?")
        blocks.append(section(f"*Last update* ({ago} ago, {by})\n{escape(last_update.text)}"))
    else:
        blocks.append(section("*Last update* _none yet — post one with `/incident update <text>`_"))
    if incident.next_update_at is not None and incident.status is not Status.RESOLVED:
        due = incident.next_update_at
        when = "overdue" if due <= now else f"due in {duration_text(now, due)}"
        blocks.append(context(f"Next status update {when}."))
    open_actions = _open_actions(incident, roles, last_update)
    if open_actions:
        blocks.append(section("*Open actions*\n" + "\n".join(f"• {a}" for a in open_actions)))
    if recent:
        blocks.append(section("*Recent timeline*\n" + "\n".join(timeline_line(i) for i in recent[-10:])))
    if incident.source_url:
        blocks.append(context(f"Source: <{escape(incident.source_url)}|{source_label(incident.source)}>"))
    text = f"Summary of #{incident.id} {escape(incident.title)}"
    return fit(text, blocks, FileReply(f"incident-{incident.id}-summary.txt", text, _plain(blocks)))


def _open_actions(
    incident: IncidentView, roles: Mapping[Role, str], last_update: TimelineItem | None
) -> list[str]:
    if incident.status is Status.RESOLVED:
        return ["Write the postmortem: `/incident postmortem`"]
    actions = []
    if incident.status is Status.TRIGGERED:
        actions.append("Acknowledge: `/incident ack`")
    if Role.COMMANDER not in roles:
        actions.append("Take command: `/incident role commander @you`")
    if last_update is None:
        actions.append("Post a first status update: `/incident update <text>`")
    if incident.phase is Phase.INVESTIGATING:
        actions.append("When the cause is known: `/incident status identified <what>`")
    return actions


def _plain(blocks: Sequence[dict[str, Any]]) -> str:
    out: list[str] = []
    for block in blocks:
        if "text" in block and isinstance(block["text"], dict):
            out.append(str(block["text"].get("text", "")))
        for item in block.get("fields", []) + block.get("elements", []):
            if isinstance(item, dict) and "text" in item:
                out.append(str(item["text"]))
    return "\n".join(out)


def home_view(
    incidents: Sequence[IncidentView],
    user_id: str,
    roles: Mapping[int, Mapping[Role, str]],
    now: datetime,
) -> dict[str, Any]:
    """The App Home tab: open incidents, the viewer's own first."""

    def mine(incident: IncidentView) -> bool:
        return user_id in incident.responders or user_id in roles.get(incident.id, {}).values()

    ordered = sorted(incidents, key=lambda i: (not mine(i), int(i.severity), i.opened_at))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Open incidents"}},
    ]
    if not ordered:
        blocks.append(section("No open incidents. :sunny:  Declare one with `/incident declare <title>`."))
    shown = ordered[: (MAX_BLOCKS - 3) // 2]
    for incident in shown:
        where = f"<#{incident.channel_id}>" if incident.channel_id else "_channel being opened_"
        you = " · *you're on it*" if mine(incident) else ""
        blocks.append(
            section(
                f"{STATUS_EMOJI[incident.status]} *#{incident.id} {escape(clip(incident.title, 200))}*\n"
                f"{incident.severity.label} · {incident.status.value} · {incident.phase.value} · "
                f"{escape(incident.service)} · open {duration_text(incident.opened_at, now)} · {where}{you}"
            )
        )
        blocks.append({"type": "divider"})
    if len(ordered) > len(shown):
        blocks.append(context(f"…and {len(ordered) - len(shown)} more."))
    blocks.append(context(f"Updated {now:%Y-%m-%d %H:%M} UTC"))
    return {"type": "home", "blocks": blocks}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def declare_modal(title: str, services: Sequence[str], channel_id: str | None) -> dict[str, Any]:
    """The form behind ``/incident declare``."""
    severities = [_option(f"{s.label}", str(int(s))) for s in Severity]
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "max_length": 150,
                **({"initial_value": clip(title, 150)} if title else {}),
            },
        },
        {
            "type": "input",
            "block_id": "severity",
            "label": {"type": "plain_text", "text": "Severity"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": severities,
                "initial_option": severities[2],
            },
        },
        {
            "type": "input",
            "block_id": "service",
            "label": {"type": "plain_text", "text": "Service"},
            "element": (
                {
                    "type": "static_select",
                    "action_id": "value",
                    "options": [_option(clip(s, 75), s) for s in services[:100]],
                }
                if services
                else {"type": "plain_text_input", "action_id": "value", "max_length": 200}
            ),
        },
        {
            "type": "input",
            "block_id": "description",
            "optional": True,
            "label": {"type": "plain_text", "text": "What is happening?"},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": True,
                "max_length": 3000,
            },
        },
        {
            "type": "input",
            "block_id": "options",
            "optional": True,
            "label": {"type": "plain_text", "text": "Options"},
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": [
                    _option("Private channel", "private"),
                    _option("Page the service's on-call", "page"),
                ],
            },
        },
    ]
    return {
        "type": "modal",
        "callback_id": DECLARE_CALLBACK,
        "private_metadata": channel_id or "",
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def update_modal(
    incident: IncidentView, last_update: TimelineItem | None, since: Sequence[TimelineItem]
) -> dict[str, Any]:
    """The status-update form, prefilled with the last update and what happened since."""
    blocks: list[dict[str, Any]] = []
    if since:
        lines = [timeline_line(i) for i in since[-15:]]
        blocks.append(section(clip("*Since the last update*\n" + "\n".join(lines), MAX_SECTION)))
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": True,
        "max_length": 3000,
    }
    if last_update is not None:
        element["initial_value"] = clip(last_update.text, 3000)
    blocks.append(
        {
            "type": "input",
            "block_id": "update",
            "label": {"type": "plain_text", "text": "Status update"},
            "element": element,
        }
    )
    return {
        "type": "modal",
        "callback_id": UPDATE_CALLBACK,
        "private_metadata": str(incident.id),
        "title": {"type": "plain_text", "text": clip(f"Update #{incident.id}", 24)},
        "submit": {"type": "plain_text", "text": "Post update"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }
