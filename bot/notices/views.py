"""Block Kit for customer notices: the form, the preview, the approval
request and the delivery report. Pure functions, no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.incidents.card import clip, escape
from bot.incidents.views import section
from bot.notices.config import NoticesConfig
from bot.notices.model import UNSUBSCRIBE_MARK, Impact, NoticeDraft, NoticeStatus, Rendered
from bot.notices.outbox import Figures

FORM_CALLBACK = "notice_form"
PREVIEW_CALLBACK = "notice_preview"
ACTION_APPROVE = "firebell_notice_approve"
NEXT_UPDATE_CHOICES = {
    "": "No time given",
    "15": "In 15 minutes",
    "30": "In 30 minutes",
    "60": "In 1 hour",
    "120": "In 2 hours",
}
DEFAULT_IMPACT = {1: Impact.CRITICAL, 2: Impact.MAJOR, 3: Impact.MINOR, 4: Impact.MINOR}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": clip(text, 75)}, "value": value}


def _select(
    block_id: str, label: str, options: list[dict[str, Any]], initial: dict[str, Any] | None
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
    if initial is not None:
        element["initial_option"] = initial
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


def notice_form(
    incident_id: int,
    config: NoticesConfig,
    *,
    status: NoticeStatus,
    impact: Impact,
    message: str,
) -> dict[str, Any]:
    """The form behind ``/incident notify``; submitting it shows the preview."""
    statuses = [_option(s.value.capitalize(), s.value) for s in NoticeStatus]
    impacts = [_option(i.value.capitalize(), i.value) for i in Impact]
    nexts = [_option(text, value) for value, text in NEXT_UPDATE_CHOICES.items() if value] + [
        _option(NEXT_UPDATE_CHOICES[""], "none")
    ]
    segments = [_option(name, name) for name in config.effective_segments()]
    blocks: list[dict[str, Any]] = [
        _select("status", "Status", statuses, statuses[list(NoticeStatus).index(status)]),
        _select("impact", "Impact", impacts, impacts[list(Impact).index(impact)]),
    ]
    if config.components:
        blocks.append(
            {
                "type": "input",
                "block_id": "components",
                "optional": True,
                "label": {"type": "plain_text", "text": "Affected components"},
                "element": {
                    "type": "multi_static_select",
                    "action_id": "value",
                    "options": [_option(c, c) for c in config.components[:100]],
                },
            }
        )
    blocks += [
        {
            "type": "input",
            "block_id": "message",
            "label": {"type": "plain_text", "text": "Message for customers"},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": True,
                "max_length": 2000,
                **({"initial_value": clip(message, 2000)} if message else {}),
            },
        },
        _select("next_update", "Next update", nexts, nexts[1]),
        {
            "type": "input",
            "block_id": "segments",
            "label": {"type": "plain_text", "text": "Send to"},
            "element": {
                "type": "checkboxes",
                "action_id": "value",
                "options": segments,
                "initial_options": segments,
            },
        },
    ]
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "private_metadata": json.dumps({"incident_id": incident_id}),
        "title": {"type": "plain_text", "text": "Customer notice"},
        "submit": {"type": "plain_text", "text": "Preview"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def next_update_at(choice: str | None, now: datetime) -> datetime | None:
    return now + timedelta(minutes=int(choice)) if choice and choice.isdigit() else None


def draft_to_json(draft: NoticeDraft) -> str:
    return json.dumps(
        {
            "status": draft.status.value,
            "impact": draft.impact.value,
            "message": draft.message,
            "incident_id": draft.incident_id,
            "incident_title": draft.incident_title,
            "components": list(draft.components),
            "next_update_at": draft.next_update_at.isoformat() if draft.next_update_at else None,
            "segments": list(draft.segments),
        }
    )


def draft_from_json(text: str) -> NoticeDraft:
    data = json.loads(text)
    return NoticeDraft(
        status=NoticeStatus(data["status"]),
        impact=Impact(data["impact"]),
        message=str(data["message"]),
        incident_id=data.get("incident_id"),
        incident_title=data.get("incident_title"),
        components=tuple(data.get("components") or ()),
        next_update_at=datetime.fromisoformat(data["next_update_at"]) if data.get("next_update_at") else None,
        segments=tuple(data.get("segments") or ()),
    )


def preview_view(draft: NoticeDraft, bodies: Sequence[Rendered], *, needs_approval: bool) -> dict[str, Any]:
    """What each segment will get on each channel, before anything goes out."""
    blocks: list[dict[str, Any]] = [
        section(
            "*Preview* — nothing has been sent yet. Press *Send* to send it"
            + (" for approval." if needs_approval else ".")
        )
    ]
    seen: set[tuple[str, str]] = set()
    for body in bodies:
        # One locale per segment and channel keeps the preview short; the
        # file of every rendering is not needed to judge the wording.
        if (body.segment, body.channel) in seen:
            continue
        seen.add((body.segment, body.channel))
        text = body.text.replace(UNSUBSCRIBE_MARK, "(unsubscribe link)")
        blocks.append({"type": "divider"})
        where = f"*{escape(body.segment)}* · {body.channel} · {body.locale}"
        blocks.append(section(f"{where}\n*{escape(body.subject)}*\n```{escape(clip(text, 2500))}```"))
        if len(blocks) >= 45:
            blocks.append(section(f"… and more ({len(bodies)} renderings in all)"))
            break
    return {
        "type": "modal",
        "callback_id": PREVIEW_CALLBACK,
        "private_metadata": draft_to_json(draft),
        "title": {"type": "plain_text", "text": "Customer notice"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Back"},
        "blocks": blocks[:50],
    }


def approval_blocks(notice_id: int, author: str, draft: NoticeDraft) -> list[dict[str, Any]]:
    return [
        section(
            f":envelope: Customer notice #{notice_id} by <@{author}> waits for a second person's approval:\n"
            f"*{draft.status.value.capitalize()}* — {escape(clip(draft.message, 1500))}"
        ),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Approve and send"},
                    "style": "primary",
                    "action_id": ACTION_APPROVE,
                    "value": str(notice_id),
                }
            ],
        },
    ]


def _queued(counts: dict[str, int]) -> int:
    return sum(counts.get(state, 0) for state in ("pending", "sending", "retry"))


def report_text(notice_id: int, figures: Figures, *, done: bool, first_after: float | None = None) -> str:
    """The delivery message: figures per segment and channel, then failures."""
    head = f":envelope: Customer notice #{notice_id}: " + ("delivered" if done else "sending…")
    lines = [head]
    if first_after is not None:
        lines.append(
            f"First customer notice of this incident, {int(first_after // 60)} min after it started."
        )
    for (segment, channel), counts in sorted(figures.counts.items()):
        sent = counts.get("sent", 0) + counts.get("committed", 0)
        failed = counts.get("failed", 0) + counts.get("dead", 0)
        lines.append(
            f"• {escape(segment)} · {channel}: queued {_queued(counts)}, sent {sent}, failed {failed}, "
            f"unsubscribed {figures.unsubscribed.get(segment, 0)}"
        )
    if not figures.counts:
        lines.append("• no recipients on these channels (the status page shows it)")
    if figures.failures:
        lines.append("Failures:")
        lines += [
            f"  ✗ {escape(seg)} · {chan} · {escape(target)}: {escape(clip(reason, 200))}"
            for seg, chan, target, reason in figures.failures
        ]
    return clip("\n".join(lines), 3000)


def refusal_view(text: str) -> dict[str, Any]:
    """What the form turns into when the notice may not be sent."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Customer notice"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [section(f":no_entry: {escape(text)}")],
    }
