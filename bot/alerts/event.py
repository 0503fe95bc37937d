"""The vendor-neutral alert event every source parser produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    PAGERDUTY = "pagerduty"
    OPSGENIE = "opsgenie"
    ALERTMANAGER = "alertmanager"
    SLACK = "slack"


class AlertAction(StrEnum):
    """What happened at the source."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    UNACKNOWLEDGE = "unacknowledge"
    ESCALATE = "escalate"
    REASSIGN = "reassign"
    PRIORITY = "priority"
    NOTE = "note"
    RESOLVE = "resolve"
    REOPEN = "reopen"


@dataclass(frozen=True)
class AlertEvent:
    """One thing that happened to one alert or incident at a source.

    ``source_ref`` identifies the source's incident (PagerDuty incident id,
    Opsgenie alert id, Alertmanager group key): events with the same ref belong
    to the same firebell incident. ``delivery_key`` identifies this event, so a
    redelivery is recognised and ignored.
    """

    source: Source
    delivery_key: str
    source_ref: str
    action: AlertAction
    title: str
    service: str
    occurred_at: datetime
    priority: str | None = None
    urgency: str | None = None
    url: str | None = None
    actor: str | None = None
    detail: str | None = None
    escalation_policy_id: str | None = None
    teams: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    # The source's own dedup key (PagerDuty incident_key, Opsgenie alias):
    # how an incident firebell paged for finds its way back.
    dedup_key: str | None = None


def event_to_dict(event: AlertEvent) -> dict[str, object]:
    """A JSON-ready form of ``event`` (stored with the delivery)."""
    return {
        "source": event.source.value,
        "delivery_key": event.delivery_key,
        "source_ref": event.source_ref,
        "action": event.action.value,
        "title": event.title,
        "service": event.service,
        "occurred_at": event.occurred_at.isoformat(),
        "priority": event.priority,
        "urgency": event.urgency,
        "url": event.url,
        "actor": event.actor,
        "detail": event.detail,
        "escalation_policy_id": event.escalation_policy_id,
        "teams": list(event.teams),
        "labels": dict(event.labels),
        "dedup_key": event.dedup_key,
    }


def event_from_dict(data: dict[str, object]) -> AlertEvent:
    """The inverse of ``event_to_dict``."""

    def text(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    teams = data.get("teams") or []
    labels = data.get("labels") or {}
    assert isinstance(teams, list) and isinstance(labels, dict)
    return AlertEvent(
        source=Source(str(data["source"])),
        delivery_key=str(data["delivery_key"]),
        source_ref=str(data["source_ref"]),
        action=AlertAction(str(data["action"])),
        title=str(data["title"]),
        service=str(data["service"]),
        occurred_at=datetime.fromisoformat(str(data["occurred_at"])),
        priority=text("priority"),
        urgency=text("urgency"),
        url=text("url"),
        actor=text("actor"),
        detail=text("detail"),
        escalation_policy_id=text("escalation_policy_id"),
        teams=tuple(str(t) for t in teams),
        labels={str(k): str(v) for k, v in labels.items()},
        dedup_key=text("dedup_key"),
    )
