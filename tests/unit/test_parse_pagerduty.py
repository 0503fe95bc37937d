"""PagerDuty Webhooks v3 bodies to AlertEvent values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.pagerduty import parse_pagerduty
from bot.errors import InvalidRequest
from tests.samples import pagerduty_event, to_body


def parse_one(payload: dict[str, Any], webhook_id: str | None = None) -> AlertEvent:
    events = parse_pagerduty(to_body(payload), webhook_id)
    assert len(events) == 1
    return events[0]


def reason_for(body: bytes) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_pagerduty(body)
    assert caught.value.status == 400
    return caught.value.reason


def test_triggered_incident() -> None:
    payload = pagerduty_event()
    event = parse_one(payload, webhook_id="dd6a9ebd-bc4e-4fc6-bab8-2d6b0c1f4de1")
    assert event == AlertEvent(
        source=Source.PAGERDUTY,
        delivery_key="dd6a9ebd-bc4e-4fc6-bab8-2d6b0c1f4de1",
        source_ref="PGR0VU2",
        action=AlertAction.TRIGGER,
        title="Checkout API error rate above 5%",
        service="checkout",
        occurred_at=datetime(2024, 5, 20, 14, tzinfo=UTC),
        priority="P1",
        urgency="high",
        url="https://acme.pagerduty.com/incidents/PGR0VU2",
        actor="Earline Greenholt",
        detail=None,
        escalation_policy_id="PD6ASNH",
        teams=("Payments",),
        dedup_key=payload["event"]["data"]["incident_key"],
    )


@pytest.mark.parametrize(
    ("event_type", "action"),
    [
        ("incident.triggered", AlertAction.TRIGGER),
        ("incident.acknowledged", AlertAction.ACKNOWLEDGE),
        ("incident.unacknowledged", AlertAction.UNACKNOWLEDGE),
        ("incident.escalated", AlertAction.ESCALATE),
        ("incident.reassigned", AlertAction.REASSIGN),
        ("incident.delegated", AlertAction.REASSIGN),
        ("incident.priority_updated", AlertAction.PRIORITY),
        ("incident.annotated", AlertAction.NOTE),
        ("incident.resolved", AlertAction.RESOLVE),
        ("incident.reopened", AlertAction.REOPEN),
    ],
)
def test_event_types(event_type: str, action: AlertAction) -> None:
    event = parse_one(pagerduty_event(event_type))
    assert event.action is action
    assert event.source_ref == "PGR0VU2"


@pytest.mark.parametrize(
    "event_type",
    [
        "pagey.ping",
        "incident.responder.added",
        "service.updated",
        "incident.workflow.started",
    ],
)
def test_other_event_types_are_accepted_but_ignored(event_type: str) -> None:
    payload = pagerduty_event(event_type)
    # Even without the data.id an incident would need.
    payload["event"]["data"] = {"type": "ping"}
    assert parse_pagerduty(to_body(payload)) == []


def test_annotated_takes_the_note_and_the_incident_reference() -> None:
    payload = pagerduty_event("incident.annotated", note="Failing over to eu-west-2.")
    event = parse_one(payload)
    assert event.action is AlertAction.NOTE
    assert event.source_ref == "PGR0VU2"
    assert event.title == "Checkout API error rate above 5%"
    assert event.detail == "Failing over to eu-west-2."
    assert event.url == "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert event.service == "unknown"


def test_reassigned_and_escalated_name_the_assignees() -> None:
    for event_type in ("incident.reassigned", "incident.escalated"):
        payload = pagerduty_event(event_type, assignees=["Ada Lovelace", "Alan Turing"])
        assert parse_one(payload).detail == "Ada Lovelace, Alan Turing"


def test_priority_updated_names_the_new_priority() -> None:
    event = parse_one(pagerduty_event("incident.priority_updated", priority="P2"))
    assert event.detail == "P2"
    assert event.priority == "P2"


def test_resolve_reason() -> None:
    merged = pagerduty_event(
        "incident.resolved",
        resolve_reason={
            "type": "merge_resolve_reason",
            "incident": {"id": "PXYZ123", "summary": "[#1233] Checkout down"},
        },
    )
    assert parse_one(merged).detail == "merged into [#1233] Checkout down"
    assert parse_one(pagerduty_event("incident.resolved")).detail is None


def test_incident_without_priority_agent_or_service() -> None:
    payload = pagerduty_event(priority=None, agent=None, service="checkout")
    del payload["event"]["data"]["service"]
    event = parse_one(payload)
    assert event.priority is None
    assert event.urgency == "high"
    assert event.actor is None
    assert event.service == "unknown"


def test_delivery_key_is_the_webhook_id_else_the_event_id() -> None:
    payload = pagerduty_event(event_id="01E2PBT6BAKLX7NDXYBRVZQ21D")
    assert parse_one(payload).delivery_key == "01E2PBT6BAKLX7NDXYBRVZQ21D"
    assert parse_one(payload, webhook_id="").delivery_key == "01E2PBT6BAKLX7NDXYBRVZQ21D"
    assert parse_one(payload, webhook_id="wh-1").delivery_key == "wh-1"


def test_redelivery_has_the_same_key_and_other_events_do_not() -> None:
    first = parse_one(pagerduty_event())
    again = parse_one(pagerduty_event())
    acked = parse_one(pagerduty_event("incident.acknowledged", occurred_at="2024-05-20T14:03:00Z"))
    assert first.delivery_key == again.delivery_key
    assert acked.delivery_key != first.delivery_key


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-05-20T14:00:00Z", datetime(2024, 5, 20, 14, tzinfo=UTC)),
        (
            "2024-05-20T14:00:00.250Z",
            datetime(2024, 5, 20, 14, 0, 0, 250_000, tzinfo=UTC),
        ),
        ("2024-05-20T16:00:00+02:00", datetime(2024, 5, 20, 14, tzinfo=UTC)),
        ("2024-05-20T14:00:00", datetime(2024, 5, 20, 14, tzinfo=UTC)),
    ],
)
def test_occurred_at_is_timezone_aware_utc(stamp: str, expected: datetime) -> None:
    event = parse_one(pagerduty_event(occurred_at=stamp))
    assert event.occurred_at == expected
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.tzinfo is UTC


def malformed(mutate: Any) -> bytes:
    payload = pagerduty_event()
    mutate(payload["event"])
    return to_body(payload)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is not valid JSON"),
        (b"{not json", "body is not valid JSON"),
        (b"\xff\xfe\x00garbage", "body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON"),
        (b"[]", "body is not a JSON object"),
        (b'"event"', "body is not a JSON object"),
        (b"{}", "missing field event"),
        (b'{"event": []}', "event must be an object"),
        (malformed(lambda e: e.pop("id")), "missing field event.id"),
        (malformed(lambda e: e.update(id=42)), "event.id must be a string"),
        (malformed(lambda e: e.pop("event_type")), "missing field event.event_type"),
        (malformed(lambda e: e.pop("data")), "missing field event.data"),
        (malformed(lambda e: e.update(data="PGR0VU2")), "event.data must be an object"),
        (malformed(lambda e: e["data"].pop("id")), "missing field event.data.id"),
        (malformed(lambda e: e["data"].update(id="")), "missing field event.data.id"),
        (malformed(lambda e: e.pop("occurred_at")), "missing field event.occurred_at"),
        (
            malformed(lambda e: e.update(occurred_at="yesterday")),
            "event.occurred_at is not an ISO 8601 timestamp",
        ),
        (
            malformed(lambda e: e["data"].update(title=7)),
            "event.data.title must be a string",
        ),
        (
            malformed(lambda e: e["data"].update(service="checkout")),
            "event.data.service must be an object",
        ),
        (
            malformed(lambda e: e["data"].update(assignees={"summary": "x"})),
            "event.data.assignees must be a list",
        ),
        (
            malformed(lambda e: e["data"].update(teams=["Payments"])),
            "event.data.teams[0] must be an object",
        ),
        (
            malformed(lambda e: e.update(agent="someone")),
            "event.agent must be an object",
        ),
    ],
)
def test_malformed_bodies_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    assert reason_for(body) == reason


def test_annotated_without_incident_reference_is_rejected() -> None:
    payload = pagerduty_event("incident.annotated")
    del payload["event"]["data"]["incident"]
    assert reason_for(to_body(payload)) == "missing field event.data.incident"


def test_samples_are_deterministic() -> None:
    assert json.dumps(pagerduty_event("incident.annotated")) == json.dumps(
        pagerduty_event("incident.annotated")
    )
