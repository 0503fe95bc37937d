"""Incident values shared by the service, the card renderer and the side effects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.alerts.severity import Severity


class Status(StrEnum):
    """Where the incident stands with the pager."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Phase(StrEnum):
    """Where the response stands, as told to people (and status pages)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class Role(StrEnum):
    COMMANDER = "commander"
    COMMS = "comms"
    SCRIBE = "scribe"


@dataclass(frozen=True)
class IncidentView:
    """A read-only snapshot of an incident row."""

    id: int
    title: str
    service: str
    severity: Severity
    status: Status
    source: str
    source_url: str | None
    escalation_policy_id: str | None
    teams: tuple[str, ...]
    private: bool
    alert_count: int
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    channel_id: str | None
    channel_name: str | None
    card_ts: str | None
    topic: str | None
    setup_done: frozenset[str]
    responders: tuple[str, ...]
    missing_responders: tuple[str, ...]
    phase: Phase = Phase.INVESTIGATING
    description: str | None = None
    declared_by: str | None = None
    mitigated_at: datetime | None = None
    last_update_at: datetime | None = None
    next_update_at: datetime | None = None
    nudged_at: datetime | None = None


@dataclass(frozen=True)
class Actor:
    """Who did something: a Slack user (id and display name) or a source-side person."""

    name: str
    slack_user_id: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.slack_user_id}>" if self.slack_user_id else self.name


def incident_view(row: Mapping[Any, Any]) -> IncidentView:
    """The view of an ``incidents`` row (a ``Row._mapping`` or a dict of its columns)."""
    return IncidentView(
        id=row["id"],
        title=row["title"],
        service=row["service"],
        severity=Severity(row["severity"]),
        status=Status(row["status"]),
        source=row["source"],
        source_url=row["source_url"],
        escalation_policy_id=row["escalation_policy_id"],
        teams=tuple(json.loads(row["teams"])),
        private=row["private"],
        alert_count=row["alert_count"],
        opened_at=row["opened_at"],
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
        channel_id=row["channel_id"],
        channel_name=row["channel_name"],
        card_ts=row["card_ts"],
        topic=row["topic"],
        setup_done=frozenset(s for s in row["setup_done"].split(",") if s),
        responders=tuple(json.loads(row["responders"])),
        missing_responders=tuple(json.loads(row["missing_responders"])),
        phase=Phase(row["phase"]),
        description=row["description"],
        declared_by=row["declared_by"],
        mitigated_at=row["mitigated_at"],
        last_update_at=row["last_update_at"],
        next_update_at=row["next_update_at"],
        nudged_at=row["nudged_at"],
    )
