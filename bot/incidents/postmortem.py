"""The postmortem draft: a Markdown document built from the incident record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.incidents.card import source_label
from bot.incidents.model import IncidentView, Role
from bot.incidents.response import TimelineItem, duration_text

_FOLLOW_UP_KINDS = {"note", "pin", "update"}


def _md(text: str) -> str:
    """Keep Markdown structure characters from outside text inert."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _since(start: datetime, end: datetime | None) -> str:
    return duration_text(start, end) if end is not None else "not yet"


def render_postmortem(
    incident: IncidentView,
    roles: Mapping[Role, str],
    timeline: Sequence[TimelineItem],
    names: Mapping[str, str],
    now: datetime,
    communication: Sequence[str] = (),
) -> str:
    """Markdown: summary, impact, key times, timeline, participants, follow-ups.

    ``names`` maps Slack user ids to display names for the participants list.
    """
    end = incident.resolved_at or now
    lines = [
        f"# Postmortem: #{incident.id} {_md(incident.title)}",
        "",
        "## Summary",
        "",
        f"- **Severity:** {incident.severity.label}",
        f"- **Service:** {_md(incident.service)}",
        f"- **Status:** {incident.status.value} ({incident.phase.value})",
        f"- **Opened:** {incident.opened_at:%Y-%m-%d %H:%M} UTC"
        + (
            f" from {source_label(incident.source)}" if incident.source != "slack" else " (declared in Slack)"
        ),
        f"- **Resolved:** {incident.resolved_at:%Y-%m-%d %H:%M} UTC"
        if incident.resolved_at
        else "- **Resolved:** not yet",
        f"- **Duration:** {duration_text(incident.opened_at, end)}",
    ]
    if incident.source_url:
        lines.append(f"- **Source:** {incident.source_url}")
    lines += [
        "",
        "## Impact",
        "",
        _md(incident.description)
        if incident.description
        else "_Describe who was affected, how, and for how long._",
        "",
        "## Key times",
        "",
        "| Measure | Time |",
        "| --- | --- |",
        f"| Time to acknowledge | {_since(incident.opened_at, incident.acknowledged_at)} |",
        f"| Time to mitigate | {_since(incident.opened_at, incident.mitigated_at)} |",
        f"| Time to resolve | {_since(incident.opened_at, incident.resolved_at)} |",
        "",
        "## Timeline (UTC)",
        "",
    ]
    lines += [
        f"- {item.at:%Y-%m-%d %H:%M:%S} — **{item.kind}** {_md(item.text)}"
        + (f" ({_md(item.actor)})" if item.actor else "")
        for item in timeline
    ] or ["_No entries._"]
    participants = sorted(
        {names.get(user, user) for user in [*roles.values(), *incident.responders]}
        | {item.actor for item in timeline if item.actor}
    )
    if communication:
        lines += ["", "## Customer communication", "", *communication]
    lines += ["", "## Roles", ""]
    lines += [
        f"- **{role.value}:** {_md(names.get(roles[role], roles[role]))}" for role in Role if role in roles
    ] or ["_No roles were assigned._"]
    lines += ["", "## Participants", ""]
    lines += [f"- {_md(p)}" for p in participants] or ["_Nobody recorded._"]
    lines += ["", "## Follow-ups", ""]
    follow_ups = [i for i in timeline if i.kind in _FOLLOW_UP_KINDS and "follow" in i.text.lower()]
    lines += [f"- [ ] {_md(i.text)}" for i in follow_ups] or [
        "- [ ] _Add follow-up actions with owners and dates._"
    ]
    lines += ["", "## What went well / what went wrong", "", "_To be written by the team._", ""]
    return "\n".join(lines)
