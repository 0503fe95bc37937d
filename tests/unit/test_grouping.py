from datetime import UTC, datetime, timedelta

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.incidents.grouping import GroupCandidate, joins, pick_group, window_start
from bot.settings import GroupingConfig

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def alert(service: str = "checkout", source: Source = Source.ALERTMANAGER) -> AlertEvent:
    return AlertEvent(
        source=source,
        delivery_key="k",
        source_ref="r",
        action=AlertAction.TRIGGER,
        title="t",
        service=service,
        occurred_at=NOW,
    )


def incident(
    id: int, minutes_ago: float, service: str = "checkout", source: str = "alertmanager"
) -> GroupCandidate:
    return GroupCandidate(id, service, source, NOW - timedelta(minutes=minutes_ago))


def test_grouping_off_by_default() -> None:
    rule = GroupingConfig()
    assert window_start(rule, NOW) is None
    assert not joins(rule, alert(), incident(1, 1), NOW)


def test_same_service_within_window_joins() -> None:
    rule = GroupingConfig(window_minutes=10)
    assert joins(rule, alert(), incident(1, 9.9), NOW)
    assert not joins(rule, alert(), incident(1, 10.1), NOW)
    assert not joins(rule, alert(service="search"), incident(1, 1), NOW)


def test_by_source_also_requires_the_same_source() -> None:
    rule = GroupingConfig(window_minutes=10, by=["service", "source"])
    assert not joins(rule, alert(source=Source.PAGERDUTY), incident(1, 1), NOW)
    assert joins(rule, alert(source=Source.ALERTMANAGER), incident(1, 1), NOW)


def test_pick_group_prefers_the_newest_match() -> None:
    rule = GroupingConfig(window_minutes=30)
    candidates = [incident(1, 20), incident(2, 5), incident(3, 1, service="search")]
    assert pick_group(rule, alert(), candidates, NOW) == 2
    assert pick_group(rule, alert(service="billing"), candidates, NOW) is None
