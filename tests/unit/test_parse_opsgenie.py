"""Opsgenie webhook integration bodies to AlertEvent values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.opsgenie import parse_opsgenie
from bot.alerts.severity import Severity, default_severity_mapping, map_severity
from bot.errors import InvalidRequest
from tests.samples import SAMPLE_EPOCH_MS, opsgenie_event, to_body

ALERT_ID = "70413a06-38d6-4c85-92b8-5ebc900d42e2-1716213600000"


def parse_one(payload: dict[str, Any]) -> AlertEvent:
    events = parse_opsgenie(to_body(payload))
    assert len(events) == 1
    return events[0]


def reason_for(body: bytes) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_opsgenie(body)
    assert caught.value.status == 400
    return caught.value.reason


def test_created_alert() -> None:
    event = parse_one(opsgenie_event())
    assert event.source is Source.OPSGENIE
    assert event.action is AlertAction.TRIGGER
    assert event.source_ref == ALERT_ID
    assert event.title == "Checkout API error rate above 5%"
    assert event.service == "checkout"
    assert event.priority == "P1"
    assert event.actor == "earline@example.com"
    assert event.teams == ("payments",)
    assert event.labels == {"region": "eu-west-1", "service": "checkout"}
    assert event.url == f"https://app.opsgenie.com/alert/detail/{ALERT_ID}/details"
    assert event.occurred_at == datetime(2024, 5, 20, 14, tzinfo=UTC)
    assert event.detail is None
    assert len(event.delivery_key) == 64


@pytest.mark.parametrize(
    ("action_name", "action"),
    [
        ("Create", AlertAction.TRIGGER),
        ("Acknowledge", AlertAction.ACKNOWLEDGE),
        ("UnAcknowledge", AlertAction.UNACKNOWLEDGE),
        ("Close", AlertAction.RESOLVE),
        ("AddNote", AlertAction.NOTE),
        ("Escalate", AlertAction.ESCALATE),
        ("AssignOwnership", AlertAction.REASSIGN),
        ("UpdatePriority", AlertAction.PRIORITY),
    ],
)
def test_actions(action_name: str, action: AlertAction) -> None:
    assert parse_one(opsgenie_event(action_name)).action is action


@pytest.mark.parametrize("action_name", ["AddTags", "Delete", "TakeOwnership", "Restart"])
def test_other_actions_are_accepted_but_ignored(action_name: str) -> None:
    assert parse_opsgenie(to_body(opsgenie_event(action_name))) == []


def test_details_of_note_owner_priority_and_escalation() -> None:
    note = parse_one(opsgenie_event("AddNote", note="Failing over to eu-west-2."))
    assert note.detail == "Failing over to eu-west-2."
    owner = parse_one(opsgenie_event("AssignOwnership", owner="alan@example.com"))
    assert owner.detail == "alan@example.com"
    priority = parse_one(opsgenie_event("UpdatePriority", priority="P3"))
    assert priority.detail == "P3"
    escalated = parse_one(opsgenie_event("Escalate", escalation="payments-escalation"))
    assert escalated.detail == "payments-escalation"


@pytest.mark.parametrize("priority", ["P2", 2, "2"])
def test_priority_in_any_spelling_is_kept_raw_and_maps_to_sev2(
    priority: object,
) -> None:
    event = parse_one(opsgenie_event(priority=priority))  # type: ignore[arg-type]
    assert event.priority == str(priority)
    assert map_severity(event, default_severity_mapping()) is Severity.SEV2


def test_missing_priority() -> None:
    assert parse_one(opsgenie_event(priority=None)).priority is None


def test_service_falls_back_to_entity_then_unknown() -> None:
    assert parse_one(opsgenie_event(service=None)).service == "checkout-api"
    assert parse_one(opsgenie_event(service=None, entity="")).service == "unknown"


def test_teams_fall_back_to_team() -> None:
    assert parse_one(opsgenie_event(teams=None, team="sre")).teams == ("sre",)
    assert parse_one(opsgenie_event(teams=None)).teams == ()


def test_non_string_details_become_json_text() -> None:
    event = parse_one(opsgenie_event(details={"replicas": 3, "canary": True}))
    assert event.labels["replicas"] == "3"
    assert event.labels["canary"] == "true"


@pytest.mark.parametrize(
    ("created_at", "updated_at", "expected"),
    [
        # createdAt in milliseconds, updatedAt in nanoseconds, as Opsgenie sends.
        (
            SAMPLE_EPOCH_MS,
            1_716_213_660_123_456_789,
            datetime(2024, 5, 20, 14, 1, 0, 123_456, tzinfo=UTC),
        ),
        (
            SAMPLE_EPOCH_MS,
            1_716_213_660_250,
            datetime(2024, 5, 20, 14, 1, 0, 250_000, tzinfo=UTC),
        ),
        (
            SAMPLE_EPOCH_MS,
            1_716_213_660_250_000,
            datetime(2024, 5, 20, 14, 1, 0, 250_000, tzinfo=UTC),
        ),
        (1_716_213_600, None, datetime(2024, 5, 20, 14, tzinfo=UTC)),
    ],
)
def test_timestamps_by_magnitude(created_at: int, updated_at: int | None, expected: datetime) -> None:
    payload = opsgenie_event(created_at=created_at, updated_at=updated_at)
    if updated_at is None:
        del payload["alert"]["updatedAt"]
    assert parse_one(payload).occurred_at == expected


def test_updated_at_alone_is_enough() -> None:
    payload = opsgenie_event(created_at=None, updated_at=1_716_213_660_000_000_000)
    assert parse_one(payload).occurred_at == datetime(2024, 5, 20, 14, 1, tzinfo=UTC)


def test_redelivery_has_the_same_key() -> None:
    first = parse_one(opsgenie_event("AddNote", updated_at=1_716_213_700_000_000_000))
    again = parse_one(opsgenie_event("AddNote", updated_at=1_716_213_700_000_000_000))
    assert first.delivery_key == again.delivery_key


def test_different_events_have_different_keys() -> None:
    stamp = 1_716_213_700_000_000_000
    keys = {
        parse_one(opsgenie_event()).delivery_key,
        parse_one(opsgenie_event("Acknowledge", updated_at=stamp)).delivery_key,
        parse_one(opsgenie_event("AddNote", updated_at=stamp, note="one")).delivery_key,
        parse_one(opsgenie_event("AddNote", updated_at=stamp, note="two")).delivery_key,
        parse_one(opsgenie_event("AddNote", updated_at=stamp + 1, note="one")).delivery_key,
        parse_one(opsgenie_event("UpdatePriority", updated_at=stamp, priority="P2")).delivery_key,
        parse_one(opsgenie_event("UpdatePriority", updated_at=stamp, priority="P3")).delivery_key,
        parse_one(opsgenie_event(alert_id="another-alert")).delivery_key,
    }
    assert len(keys) == 8


def alert_without(key: str) -> bytes:
    payload = opsgenie_event()
    del payload["alert"][key]
    return to_body(payload)


def alert_with(**fields: Any) -> bytes:
    payload = opsgenie_event()
    payload["alert"].update(fields)
    return to_body(payload)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is not valid JSON"),
        (b"action=Create", "body is not valid JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"{}", "missing field action"),
        (b'{"action": 1}', "action must be a string"),
        (b'{"action": "Create"}', "missing field alert"),
        (b'{"action": "Create", "alert": "x"}', "alert must be an object"),
        (alert_without("alertId"), "missing field alert.alertId"),
        (alert_with(alertId=123), "alert.alertId must be a string"),
        (alert_with(createdAt=None, updatedAt=None), "missing field alert.createdAt"),
        (
            alert_with(updatedAt="soon"),
            "alert.updatedAt must be an epoch timestamp number",
        ),
        (alert_with(updatedAt=-5), "alert.updatedAt must not be negative"),
        (
            b'{"action":"Create","alert":{"alertId":"a","createdAt":NaN}}',
            "alert.createdAt must be an epoch timestamp number",
        ),
        (alert_with(message=["x"]), "alert.message must be a string"),
        (
            alert_with(priority={"level": 1}),
            "alert.priority must be a string or a number",
        ),
        (alert_with(teams="payments"), "alert.teams must be a list of strings"),
        (alert_with(details=["service"]), "alert.details must be an object"),
    ],
)
def test_malformed_bodies_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    assert reason_for(body) == reason


def test_alert_links_follow_the_opsgenie_region() -> None:
    from bot.alerts.opsgenie import app_url_for

    assert app_url_for("https://api.eu.opsgenie.com") == "https://app.eu.opsgenie.com"
    assert app_url_for("https://api.opsgenie.com") == "https://app.opsgenie.com"
    assert app_url_for("http://127.0.0.1:9999") == "https://app.opsgenie.com"
    event = parse_opsgenie(to_body(opsgenie_event()), "https://app.eu.opsgenie.com")[0]
    assert event.url is not None and event.url.startswith("https://app.eu.opsgenie.com/alert/detail/")
