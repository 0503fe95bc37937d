"""Severity scale, default rules, overrides and the mapping of events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.severity import (
    Severity,
    SeverityMapping,
    default_severity_mapping,
    map_severity,
    normalise_priority,
)


def event(source: Source, priority: str | None = None, urgency: str | None = None) -> AlertEvent:
    return AlertEvent(
        source=source,
        delivery_key="delivery-1",
        source_ref="ref-1",
        action=AlertAction.TRIGGER,
        title="Checkout API error rate above 5%",
        service="checkout",
        occurred_at=datetime(2024, 5, 20, 14, tzinfo=UTC),
        priority=priority,
        urgency=urgency,
    )


def test_labels() -> None:
    assert [s.label for s in Severity] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    assert Severity.SEV1 < Severity.SEV4


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("P2", "p2"),
        (2, "p2"),
        ("2", "p2"),
        (" p2 ", "p2"),
        ("P02", "p2"),
        (2.0, "p2"),
        ("Critical ", "critical"),
        ("SEV2", "sev2"),
        ("urgency:High", "urgency:high"),
        (None, None),
        ("", None),
        ("  ", None),
        (True, None),
    ],
)
def test_normalise_priority(raw: object, key: str | None) -> None:
    assert normalise_priority(raw) == key


@pytest.mark.parametrize("priority", ["P2", "2", "p2"])
def test_opsgenie_priority_in_any_spelling(priority: str) -> None:
    mapping = default_severity_mapping()
    assert map_severity(event(Source.OPSGENIE, priority), mapping) is Severity.SEV2


@pytest.mark.parametrize(
    ("source", "priority", "urgency", "expected"),
    [
        (Source.PAGERDUTY, "P1", "low", Severity.SEV1),
        (Source.PAGERDUTY, "P5", "high", Severity.SEV4),
        (Source.PAGERDUTY, None, "high", Severity.SEV2),
        (Source.PAGERDUTY, None, "low", Severity.SEV3),
        # A custom PagerDuty priority name falls through to the urgency.
        (Source.PAGERDUTY, "Customer facing", "high", Severity.SEV2),
        (Source.PAGERDUTY, None, None, Severity.SEV3),
        (Source.OPSGENIE, "P1", None, Severity.SEV1),
        (Source.OPSGENIE, "P5", None, Severity.SEV4),
        (Source.OPSGENIE, None, None, Severity.SEV3),
        (Source.ALERTMANAGER, "critical", None, Severity.SEV1),
        (Source.ALERTMANAGER, "page", None, Severity.SEV1),
        (Source.ALERTMANAGER, "Major", None, Severity.SEV2),
        (Source.ALERTMANAGER, "warning", None, Severity.SEV3),
        (Source.ALERTMANAGER, "info", None, Severity.SEV4),
        (Source.ALERTMANAGER, "whatever", None, Severity.SEV3),
        # Urgency is a PagerDuty notion only.
        (Source.OPSGENIE, None, "high", Severity.SEV3),
    ],
)
def test_default_rules(source: Source, priority: str | None, urgency: str | None, expected: Severity) -> None:
    assert map_severity(event(source, priority, urgency), default_severity_mapping()) is expected


def test_overrides_replace_defaults_and_keep_the_rest() -> None:
    base = default_severity_mapping()
    mapping = base.merged({"alertmanager": {"Warning": 2, "disaster": 1}, "pagerduty": {"P3": 2}})
    assert map_severity(event(Source.ALERTMANAGER, "warning"), mapping) is Severity.SEV2
    assert map_severity(event(Source.ALERTMANAGER, "disaster"), mapping) is Severity.SEV1
    assert map_severity(event(Source.ALERTMANAGER, "critical"), mapping) is Severity.SEV1
    assert map_severity(event(Source.PAGERDUTY, "P3"), mapping) is Severity.SEV2
    assert map_severity(event(Source.OPSGENIE, "P3"), mapping) is Severity.SEV3
    # The original is untouched.
    assert map_severity(event(Source.ALERTMANAGER, "warning"), base) is Severity.SEV3


def test_override_keys_are_normalised_like_lookups() -> None:
    mapping = default_severity_mapping().merged({"opsgenie": {"3": 1}})
    assert mapping.rules["opsgenie"]["p3"] == 1
    assert map_severity(event(Source.OPSGENIE, "P3"), mapping) is Severity.SEV1


def test_default_severity_applies_when_nothing_matches() -> None:
    mapping = replace(default_severity_mapping(), default=Severity.SEV4)
    assert map_severity(event(Source.ALERTMANAGER, "unheard-of"), mapping) is Severity.SEV4


@pytest.mark.parametrize("value", [0, 5, -1, True, "2", 2.5, None])
def test_out_of_range_override_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"severity for alertmanager 'warning' must be"):
        default_severity_mapping().merged({"alertmanager": {"warning": value}})  # type: ignore[dict-item]


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown alert source 'pagerdutty'"):
        default_severity_mapping().merged({"pagerdutty": {"P1": 1}})


def test_rules_are_read_only() -> None:
    mapping = SeverityMapping(rules={"opsgenie": {"P1": 1}})
    with pytest.raises(TypeError):
        mapping.rules["opsgenie"]["p1"] = 4  # type: ignore[index]
