"""Alertmanager webhook (payload version 4) bodies to AlertEvent values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.alerts.alertmanager import parse_alertmanager
from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.errors import InvalidRequest
from tests.samples import alertmanager_alert, alertmanager_group, to_body

GROUP_KEY = '{}:{alertname="HighErrorRate"}'


def parse_one(payload: dict[str, Any]) -> AlertEvent:
    events = parse_alertmanager(to_body(payload))
    assert len(events) == 1
    return events[0]


def reason_for(body: bytes) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse_alertmanager(body)
    assert caught.value.status == 400
    return caught.value.reason


def three_instances(status: str = "firing") -> list[dict[str, Any]]:
    return [
        alertmanager_alert(
            instance=f"checkout-{n}:8080",
            status=status,
            starts_at=f"2024-05-20T14:0{n}:00.5Z",
        )
        for n in (3, 1, 2)
    ]


def test_firing_group() -> None:
    event = parse_one(alertmanager_group())
    assert event.source is Source.ALERTMANAGER
    assert event.action is AlertAction.TRIGGER
    assert event.source_ref == f"firebell/{GROUP_KEY}"
    assert event.title == "HighErrorRate on checkout-1:8080"
    assert event.service == "checkout"
    assert event.priority == "critical"
    assert event.url == "http://alertmanager.example.com:9093"
    assert event.detail == "HighErrorRate on checkout-1:8080"
    assert event.labels["alertname"] == "HighErrorRate"
    assert event.labels["severity"] == "critical"
    assert len(event.delivery_key) == 64


def test_resolved_group() -> None:
    event = parse_one(alertmanager_group("resolved"))
    assert event.action is AlertAction.RESOLVE
    assert event.source_ref == f"firebell/{GROUP_KEY}"


def test_nanosecond_timestamps_and_earliest_start() -> None:
    alerts = [
        alertmanager_alert(instance="a", starts_at="2024-05-20T14:05:00.123456789Z"),
        alertmanager_alert(instance="b", starts_at="2024-05-20T14:00:00.987654321Z"),
        alertmanager_alert(instance="c", starts_at="2024-05-20T16:01:00.5+02:00"),
    ]
    event = parse_one(alertmanager_group(alerts=alerts))
    assert event.occurred_at == datetime(2024, 5, 20, 14, 0, 0, 987_654, tzinfo=UTC)


def test_title_counts_firing_alerts_when_there_is_no_summary() -> None:
    payload = alertmanager_group(alerts=three_instances())
    # The per-instance summaries differ, so there is no common summary.
    assert payload["commonAnnotations"] == {"description": "5xx responses above 5% for 5 minutes."}
    assert parse_one(payload).title == "HighErrorRate (3 alerts)"


def test_title_prefers_the_common_summary_then_group_labels() -> None:
    with_summary = alertmanager_group(
        alerts=three_instances(), annotations={"summary": "Checkout is failing"}
    )
    assert parse_one(with_summary).title == "Checkout is failing"
    no_alertname = alertmanager_group(
        labels={"team": "payments"},
        annotations={},
        group_labels={"team": "payments", "cluster": "eu-1"},
    )
    assert parse_one(no_alertname).title == "cluster=eu-1, team=payments"


def test_service_falls_back_to_job_then_unknown() -> None:
    assert parse_one(alertmanager_group(labels={"job": "api"})).service == "api"
    assert parse_one(alertmanager_group(labels={})).service == "unknown"


def test_detail_lists_at_most_ten_firing_alerts() -> None:
    alerts = [alertmanager_alert(instance=f"web-{n}") for n in range(12)]
    alerts.append(alertmanager_alert(instance="web-old", status="resolved"))
    event = parse_one(alertmanager_group(alerts=alerts, truncated_alerts=5))
    assert event.detail is not None
    names = event.detail.split(", ")
    assert names[:2] == ["HighErrorRate on web-0", "HighErrorRate on web-1"]
    assert len(names) == 11
    # Two more listed here plus five Alertmanager truncated; resolved ones are left out.
    assert names[-1] == "and 7 more"
    assert "web-old" not in event.detail
    assert event.title == "HighErrorRate (12 alerts)"


def test_repeat_notification_has_the_same_key() -> None:
    first = parse_one(alertmanager_group(alerts=three_instances()))
    # Alertmanager may list the alerts in another order on a repeat.
    repeat = parse_one(alertmanager_group(alerts=list(reversed(three_instances()))))
    assert first.delivery_key == repeat.delivery_key


def test_changed_alert_set_or_status_gives_a_new_key() -> None:
    alerts = three_instances()
    base = parse_one(alertmanager_group(alerts=alerts)).delivery_key
    fewer = parse_one(alertmanager_group(alerts=alerts[:2])).delivery_key
    one_resolved = [
        *alerts[:2],
        alertmanager_alert(instance="checkout-3:8080", status="resolved"),
    ]
    partly = parse_one(alertmanager_group(alerts=one_resolved)).delivery_key
    resolved = parse_one(alertmanager_group("resolved", alerts=three_instances("resolved"))).delivery_key
    other_group = parse_one(
        alertmanager_group(alerts=alerts, group_key='{}:{alertname="Other"}')
    ).delivery_key
    assert len({base, fewer, partly, resolved, other_group}) == 5


def test_missing_fingerprint_falls_back_to_labels() -> None:
    alerts = three_instances()
    for alert in alerts:
        del alert["fingerprint"]
    first = parse_one(alertmanager_group(alerts=alerts)).delivery_key
    assert first == parse_one(alertmanager_group(alerts=alerts)).delivery_key
    assert first != parse_one(alertmanager_group(alerts=alerts[:1])).delivery_key


def group_with(**fields: Any) -> bytes:
    payload = alertmanager_group()
    payload.update(fields)
    return to_body(payload)


def group_without(key: str) -> bytes:
    payload = alertmanager_group()
    del payload[key]
    return to_body(payload)


def first_alert_with(**fields: Any) -> bytes:
    payload = alertmanager_group()
    payload["alerts"][0].update(fields)
    return to_body(payload)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body is not valid JSON"),
        (b"not json", "body is not valid JSON"),
        (b"null", "body is not a JSON object"),
        (
            group_with(version="3"),
            "unsupported Alertmanager payload version '3' (expected '4')",
        ),
        (
            group_with(version=4),
            "unsupported Alertmanager payload version 4 (expected '4')",
        ),
        (
            group_without("version"),
            "unsupported Alertmanager payload version None (expected '4')",
        ),
        (group_without("groupKey"), "missing field groupKey"),
        (group_without("status"), "missing field status"),
        (
            group_with(status="pending"),
            "status must be one of firing, resolved, got 'pending'",
        ),
        (group_without("receiver"), "missing field receiver"),
        (group_without("alerts"), "missing field alerts"),
        (group_with(alerts={}), "alerts must be a list"),
        (group_with(alerts=[]), "alerts is empty"),
        (group_with(alerts=["x"]), "alerts[0] must be an object"),
        (
            group_with(commonLabels={"severity": 1}),
            "commonLabels must be an object of strings",
        ),
        (
            group_with(truncatedAlerts=-1),
            "truncatedAlerts must be a non-negative whole number",
        ),
        (first_alert_with(startsAt=None), "missing field alerts[0].startsAt"),
        (
            first_alert_with(startsAt="5 minutes ago"),
            "alerts[0].startsAt is not an RFC 3339 timestamp",
        ),
        (first_alert_with(status=None), "missing field alerts[0].status"),
        (
            first_alert_with(labels=["a"]),
            "alerts[0].labels must be an object of strings",
        ),
        (first_alert_with(fingerprint=7), "alerts[0].fingerprint must be a string"),
    ],
)
def test_malformed_bodies_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    assert reason_for(body) == reason


def test_the_same_alert_firing_again_after_resolving_is_a_new_delivery() -> None:
    first = parse_alertmanager(to_body(alertmanager_group("firing")))[0]
    again = parse_alertmanager(
        to_body(alertmanager_group("firing", alerts=[alertmanager_alert(starts_at="2024-05-20T16:00:00Z")]))
    )[0]
    assert first.source_ref == again.source_ref
    assert first.delivery_key != again.delivery_key
