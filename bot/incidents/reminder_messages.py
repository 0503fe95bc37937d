"""What the status-update reminders say: reminder, automatic digest, nudge.

Pure functions: an ``IncidentView`` and plain values in, Slack text and
blocks out. Everything that came from outside (titles, timeline text) is
escaped, and nothing here ever writes ``@channel``/``@here``: a reminder is
addressed to the commander, or to nobody in particular.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.incidents.card import (
    ACTION_ACKNOWLEDGE,
    ACTION_ESCALATE,
    ACTION_POST_UPDATE,
    ACTION_SNOOZE,
    button,
    clip,
    escape,
)
from bot.incidents.model import IncidentView

MAX_TEXT = 3000
MAX_DIGEST_LINES = 15
MAX_LINE = 180
# Slack user ids (U…, or W… on Enterprise Grid); anything else is not
# mentioned, so a bad row can never turn into a broadcast or a forged link.
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


@dataclass(frozen=True)
class Message:
    """A Slack message: the notification/fallback text and its blocks."""

    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True)
class Change:
    """One timeline entry as the digest lists it."""

    at: datetime
    text: str


def format_duration(delta: timedelta) -> str:
    """A short human duration: ``42 min``, ``1 h 5 min``, ``2 d 3 h``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def format_minutes(minutes: float) -> str:
    """Configured minutes for a label: ``10``, ``2.5``."""
    return f"{minutes:g}"


def mention(user_id: str | None) -> str | None:
    """``<@U…>`` for a well-formed Slack user id, else ``None``."""
    if user_id is None or not _USER_ID.match(user_id):
        return None
    return f"<@{user_id}>"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_TEXT)}}


def _actions(block_id: str, *buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id, "elements": list(buttons)}


def reminder_message(
    incident: IncidentView, commander: str | None, now: datetime, snooze_minutes: float
) -> Message:
    """ "Status update due for #12 (SEV1, investigating for 42 min); last
    update 20 min ago", addressed to the commander when there is one."""
    open_for = format_duration(now - incident.opened_at)
    if incident.last_update_at is None:
        last = "no update posted yet"
    else:
        last = f"last update {format_duration(now - incident.last_update_at)} ago"
    line = (
        f"Status update due for #{incident.id} "
        f"({incident.severity.label}, {incident.phase.value} for {open_for}); {last}"
    )
    who = mention(commander)
    if who is not None:
        text = f"{who} {line}."
    else:
        # No commander to address; say so rather than pinging everyone.
        text = f"{line}. Nobody holds the commander role: whoever leads this incident, please post an update."
    return Message(
        text=clip(text, MAX_TEXT),
        blocks=[
            _section(f":alarm_clock: {text}"),
            _actions(
                f"reminder-{incident.id}",
                button("Post update", ACTION_POST_UPDATE, incident.id, style="primary"),
                button(f"Snooze {format_minutes(snooze_minutes)} min", ACTION_SNOOZE, incident.id),
            ),
        ],
    )


def _slack_time(at: datetime) -> str:
    # Slack shows <!date^…> in each reader's own time zone; the fallback is UTC.
    return f"<!date^{int(at.timestamp())}^{{time}}|{at:%H:%M} UTC>"


def digest_message(incident: IncidentView, changes: Sequence[Change], now: datetime, since: str) -> Message:
    """The automatic digest: where the incident stands and what changed
    ``since`` (e.g. "since the last update"), newest changes kept when there
    are more than fit."""
    status = (
        f"{incident.severity.label} · {incident.status.value.capitalize()} · "
        f"{incident.phase.value.capitalize()} · open for {format_duration(now - incident.opened_at)}"
    )
    header = f":memo: *Automatic status digest for #{incident.id}: {escape(clip(incident.title, 150))}*"
    lines = [header, status]
    if not changes:
        lines.append(f"_No changes recorded {since}._")
    else:
        lines.append(f"*Changes {since}:*")
        shown = changes[-MAX_DIGEST_LINES:]
        hidden = len(changes) - len(shown)
        if hidden:
            # The newest changes matter most in a status digest; the older
            # ones stay on the timeline.
            lines.append(f"• …and {hidden} more before these")
        lines.extend(f"• {_slack_time(c.at)} {escape(clip(c.text, MAX_LINE))}" for c in shown)
    body = "\n".join(lines)
    text = f"Automatic status digest for #{incident.id}: {status}"
    return Message(
        text=clip(text, MAX_TEXT),
        blocks=[
            _section(body),
            _actions(
                f"digest-{incident.id}",
                button("Post update", ACTION_POST_UPDATE, incident.id, style="primary"),
            ),
        ],
    )


def nudge_message(incident: IncidentView, now: datetime) -> Message:
    """ "Nobody has acknowledged #12 after 10 minutes." with Escalate and
    Acknowledge buttons."""
    minutes = max(0, int((now - incident.opened_at).total_seconds() // 60))
    unit = "minute" if minutes == 1 else "minutes"
    text = f"Nobody has acknowledged #{incident.id} after {minutes} {unit}."
    return Message(
        text=text,
        blocks=[
            _section(f":rotating_light: {text}\n{escape(clip(incident.title, 300))}"),
            _actions(
                f"nudge-{incident.id}",
                button("Acknowledge", ACTION_ACKNOWLEDGE, incident.id, style="primary"),
                button(
                    "Escalate",
                    ACTION_ESCALATE,
                    incident.id,
                    style="danger",
                    confirm=f"Escalate incident #{incident.id}?",
                ),
            ),
        ],
    )
