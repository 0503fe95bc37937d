"""Incident values shared by the service, the card renderer and the side effects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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
