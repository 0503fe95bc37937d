"""Alert grouping: whether a new alert joins an open incident.

Pure: the rule, the alert and a candidate incident in, a yes or no out. The
store only narrows the candidates to open incidents opened in the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.alerts.event import AlertEvent
from bot.settings import GroupingConfig


@dataclass(frozen=True)
class GroupCandidate:
    id: int
    service: str
    source: str
    opened_at: datetime


def window_start(rule: GroupingConfig, now: datetime) -> datetime | None:
    """The earliest opening time a joinable incident may have; None when grouping is off."""
    if rule.window_minutes <= 0:
        return None
    return now - timedelta(minutes=rule.window_minutes)


def joins(rule: GroupingConfig, event: AlertEvent, candidate: GroupCandidate, now: datetime) -> bool:
    """Whether ``event`` (a new alert) belongs to the open incident ``candidate``."""
    start = window_start(rule, now)
    if start is None or candidate.opened_at < start:
        return False
    if "service" in rule.by and candidate.service != event.service:
        return False
    return not ("source" in rule.by and candidate.source != event.source.value)


def pick_group(
    rule: GroupingConfig, event: AlertEvent, candidates: list[GroupCandidate], now: datetime
) -> int | None:
    """The newest candidate the alert joins, if any."""
    for candidate in sorted(candidates, key=lambda c: c.opened_at, reverse=True):
        if joins(rule, event, candidate, now):
            return candidate.id
    return None
