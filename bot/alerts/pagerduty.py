"""PagerDuty Webhooks v3: the JSON body of one delivery to ``AlertEvent`` values.

This module owns the reading of PagerDuty's v3 webhook payload
(``{"event": {"id", "event_type", "resource_type", "occurred_at", "agent",
"data"}}``): which event types firebell acts on, which fields it takes from
the incident (or, for ``incident.annotated``, the incident note), and the 400
reasons for a body that is not such a payload. Signature checks live in
``bot.alerts.signatures``; nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.payload import (
    load_object,
    optional_object,
    optional_str,
    require_object,
    require_str,
    require_timestamp,
)
from bot.errors import InvalidRequest

_ACTIONS: dict[str, AlertAction] = {
    "incident.triggered": AlertAction.TRIGGER,
    "incident.acknowledged": AlertAction.ACKNOWLEDGE,
    "incident.unacknowledged": AlertAction.UNACKNOWLEDGE,
    "incident.escalated": AlertAction.ESCALATE,
    "incident.reassigned": AlertAction.REASSIGN,
    # Delegation moves the incident to another escalation policy: for the
    # channel that is a change of who is on the hook, like a reassignment.
    "incident.delegated": AlertAction.REASSIGN,
    "incident.priority_updated": AlertAction.PRIORITY,
    "incident.annotated": AlertAction.NOTE,
    "incident.resolved": AlertAction.RESOLVE,
    "incident.reopened": AlertAction.REOPEN,
}

UNKNOWN_SERVICE = "unknown"


def parse_pagerduty(body: bytes, webhook_id: str | None = None) -> list[AlertEvent]:
    """The events in one PagerDuty v3 webhook delivery.

    ``webhook_id`` is the ``X-Webhook-Id`` header: PagerDuty repeats it on
    every retry of a delivery, so it is the preferred delivery key; without it
    the event id (also stable across retries) is used. Event types firebell
    does not act on (``pagey.ping``, service or responder events, ...) give
    ``[]``. A body that is not a v3 payload raises ``InvalidRequest`` (400).
    """
    root = load_object(body)
    event = require_object(root, "event", "event")
    event_id = require_str(event, "id", "event.id")
    event_type = require_str(event, "event_type", "event.event_type")
    action = _ACTIONS.get(event_type)
    if action is None:
        # Checked before ``data`` because a ping's data has no id, and an
        # event we ignore should not be rejected for its shape.
        return []

    data = require_object(event, "data", "event.data")
    # For incidents this is the incident id; for notes, the note id.
    data_id = require_str(data, "id", "event.data.id")
    occurred_at = require_timestamp(event, "occurred_at", "event.occurred_at")
    agent = optional_object(event, "agent", "event.agent")
    actor = optional_str(agent, "summary", "event.agent.summary") if agent else None
    delivery_key = webhook_id.strip() if webhook_id and webhook_id.strip() else event_id

    if action is AlertAction.NOTE:
        return [_note_event(data, action, delivery_key, occurred_at, actor)]

    assignees = _summaries(data, "assignees", "event.data.assignees")
    priority_ref = optional_object(data, "priority", "event.data.priority")
    priority = optional_str(priority_ref, "summary", "event.data.priority.summary") if priority_ref else None
    incident_id = data_id
    title = (
        optional_str(data, "title", "event.data.title")
        or optional_str(data, "summary", "event.data.summary")
        or f"PagerDuty incident {incident_id}"
    )
    service_ref = optional_object(data, "service", "event.data.service")
    service = optional_str(service_ref, "summary", "event.data.service.summary") if service_ref else None
    policy = optional_object(data, "escalation_policy", "event.data.escalation_policy")

    detail: str | None = None
    if action in (AlertAction.REASSIGN, AlertAction.ESCALATE):
        detail = ", ".join(assignees) or None
    elif action is AlertAction.PRIORITY:
        detail = priority
    elif action is AlertAction.RESOLVE:
        detail = _resolve_reason(data.get("resolve_reason"))

    return [
        AlertEvent(
            source=Source.PAGERDUTY,
            delivery_key=delivery_key,
            source_ref=incident_id,
            action=action,
            title=title,
            service=service or UNKNOWN_SERVICE,
            occurred_at=occurred_at,
            priority=priority,
            urgency=optional_str(data, "urgency", "event.data.urgency"),
            url=optional_str(data, "html_url", "event.data.html_url"),
            actor=actor,
            detail=detail,
            escalation_policy_id=(
                optional_str(policy, "id", "event.data.escalation_policy.id") if policy else None
            ),
            teams=tuple(_summaries(data, "teams", "event.data.teams")),
            dedup_key=optional_str(data, "incident_key", "event.data.incident_key"),
        )
    ]


def _note_event(
    data: dict[str, object],
    action: AlertAction,
    delivery_key: str,
    occurred_at: datetime,
    actor: str | None,
) -> AlertEvent:
    # An annotated event's data is the incident_note, which only references
    # the incident; the incident's service and priority are already known
    # from its earlier events, matched by source_ref.
    incident = require_object(data, "incident", "event.data.incident")
    incident_id = require_str(incident, "id", "event.data.incident.id")
    return AlertEvent(
        source=Source.PAGERDUTY,
        delivery_key=delivery_key,
        source_ref=incident_id,
        action=action,
        title=(
            optional_str(incident, "summary", "event.data.incident.summary")
            or f"PagerDuty incident {incident_id}"
        ),
        service=UNKNOWN_SERVICE,
        occurred_at=occurred_at,
        url=optional_str(incident, "html_url", "event.data.incident.html_url"),
        actor=actor,
        detail=optional_str(data, "content", "event.data.content"),
    )


def _resolve_reason(value: object) -> str | None:
    # The REST API shapes resolve_reason as an object (so far only
    # merge_resolve_reason, pointing at the surviving incident); accept a
    # plain string too rather than reject a resolve over a cosmetic field.
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        incident = value.get("incident")
        if value.get("type") == "merge_resolve_reason" and isinstance(incident, dict):
            target = incident.get("summary") or incident.get("id")
            if isinstance(target, str) and target:
                return f"merged into {target}"
        kind = value.get("type")
        return kind if isinstance(kind, str) and kind else None
    return None


def _summaries(parent: dict[str, object], key: str, path: str) -> list[str]:
    """The ``summary`` of each reference in the list ``parent[key]``."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{path} must be a list")
    summaries: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{path}[{index}] must be an object")
        # v3 assignee entries are references; older shapes nest them under
        # "assignee", which costs nothing to accept.
        nested = item.get("assignee")
        ref = nested if isinstance(nested, dict) else item
        summary = ref.get("summary")
        if isinstance(summary, str) and summary:
            summaries.append(summary)
    return summaries
