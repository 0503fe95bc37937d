"""Block Kit for the live incident card, the channel topic and change notes.

Pure functions: an ``IncidentView`` in, Slack payloads out. Everything that
came from outside (titles, names, notes) is escaped so it cannot mention
``@channel`` or forge links.
"""

from __future__ import annotations

from typing import Any

from bot.incidents.model import IncidentView, Status

ACTION_ACKNOWLEDGE = "incident_acknowledge"
ACTION_RESOLVE = "incident_resolve"
ACTION_POST_UPDATE = "incident_post_update"
ACTION_ESCALATE = "incident_escalate"
ACTION_SNOOZE = "incident_snooze"

SOURCE_LABELS = {
    "pagerduty": "PagerDuty",
    "opsgenie": "Opsgenie",
    "alertmanager": "Alertmanager",
    "slack": "Slack",
}
STATUS_EMOJI = {
    Status.TRIGGERED: ":red_circle:",
    Status.ACKNOWLEDGED: ":large_orange_circle:",
    Status.RESOLVED: ":large_green_circle:",
}
MAX_TEXT = 3000
MAX_HEADER = 150
MAX_TOPIC = 250


def escape(text: str) -> str:
    """Escape Slack's control characters in mrkdwn text taken from outside."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source)


def topic(incident: IncidentView) -> str:
    """The channel topic: severity, status and service."""
    line = f"{incident.severity.label} · {incident.status.value.capitalize()} · service: {incident.service}"
    return clip(line, MAX_TOPIC)


def card_text(incident: IncidentView) -> str:
    """The notification/fallback text of the card."""
    return clip(
        f"#{incident.id} {incident.severity.label} {incident.status.value}: {escape(incident.title)}",
        MAX_TEXT,
    )


def _link(url: str | None, label: str) -> str:
    if not url or not url.startswith(("https://", "http://")):
        return escape(label)
    return f"<{escape(url)}|{escape(label)}>"


def render_card(incident: IncidentView) -> list[dict[str, Any]]:
    """The incident card's blocks, buttons according to the state."""
    status = f"{STATUS_EMOJI[incident.status]} {incident.status.value.capitalize()}"
    if incident.phase.value != incident.status.value:
        # Where the response stands (investigating, identified, monitoring).
        status += f" · {incident.phase.value}"
    fields = [
        f"*Severity*\n{incident.severity.label}",
        f"*Status*\n{status}",
        f"*Service*\n{escape(incident.service)}",
        f"*Source*\n{_link(incident.source_url, source_label(incident.source))}",
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(f"#{incident.id} {incident.title}", MAX_HEADER),
                "emoji": True,
            },
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields]},
    ]
    people = ", ".join(f"<@{user}>" for user in incident.responders) or "nobody yet"
    context = [f"*Responders:* {people}"]
    if incident.missing_responders:
        missing = ", ".join(escape(e) for e in incident.missing_responders)
        context.append(f"*On call but not found in Slack:* {missing}")
    if incident.alert_count > 1:
        context.append(f"*Alerts:* {incident.alert_count}")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t, MAX_TEXT)} for t in context]}
    )
    buttons: list[dict[str, Any]] = []
    if incident.status is Status.TRIGGERED:
        buttons.append(button("Acknowledge", ACTION_ACKNOWLEDGE, incident.id, style="primary"))
    if incident.status is not Status.RESOLVED:
        buttons.append(
            button(
                "Resolve",
                ACTION_RESOLVE,
                incident.id,
                style="danger",
                confirm=f"Resolve incident #{incident.id}"
                f"{' in ' + source_label(incident.source) if incident.source != 'slack' else ''}?",
            )
        )
    if incident.status is not Status.RESOLVED:
        buttons.append(button("Post update", ACTION_POST_UPDATE, incident.id))
        buttons.append(button("Escalate", ACTION_ESCALATE, incident.id))
    if buttons:
        blocks.append({"type": "actions", "block_id": f"incident-{incident.id}", "elements": buttons})
    return blocks


def button(
    label: str, action_id: str, incident_id: int, *, style: str | None = None, confirm: str | None = None
) -> dict[str, Any]:
    """A button acting on one incident, optionally asking for confirmation."""
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": str(incident_id),
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Are you sure?"},
            "text": {"type": "plain_text", "text": clip(confirm, 300)},
            "confirm": {"type": "plain_text", "text": label},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return button


def announcement(incident: IncidentView) -> str:
    """The line posted in the incidents channel when a channel opens."""
    where = f"<#{incident.channel_id}>" if incident.channel_id else "(channel pending)"
    return clip(
        f":rotating_light: {incident.severity.label} incident #{incident.id} "
        f"on *{escape(incident.service)}*: {escape(incident.title)} → {where}",
        MAX_TEXT,
    )
