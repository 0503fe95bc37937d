"""The schema: every table firebell keeps, as SQLModel classes.

Alembic migrations in ``migrations/`` create exactly these; a test compares
the two so they cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Dialect, Index, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that goes in and comes out timezone-aware in UTC.

    SQLite keeps no offset, so without this, values read back naive and no
    longer compare with the aware times the ``Clock`` hands out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC time")
        utc: datetime = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(*, nullable: bool = True, index: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Delivery(SQLModel, table=True):
    """One accepted webhook delivery; the queue the ingest loop drains."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("source", "delivery_key", name="uq_deliveries_source_key"),
        Index("ix_deliveries_pending", "processed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    delivery_key: str = Field(max_length=200)
    received_at: datetime = Field(sa_column=_utc_column(nullable=False))
    events: str = Field(sa_column=Column(Text, nullable=False))
    processed_at: datetime | None = Field(default=None, sa_column=_utc_column())
    error: str | None = Field(default=None, sa_column=Column(Text))


class Incident(SQLModel, table=True):
    """A firebell incident; its id is the number people say out loud."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_open_service", "status", "service", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    service: str = Field(max_length=200)
    severity: int
    status: str = Field(max_length=20)
    source: str = Field(max_length=32)
    source_url: str | None = Field(default=None, sa_column=Column(Text))
    escalation_policy_id: str | None = Field(default=None, max_length=64)
    teams: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    private: bool = False
    alert_count: int = 1
    opened_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))
    acknowledged_at: datetime | None = Field(default=None, sa_column=_utc_column())
    resolved_at: datetime | None = Field(default=None, sa_column=_utc_column())
    channel_id: str | None = Field(default=None, max_length=32)
    channel_name: str | None = Field(default=None, max_length=80)
    card_ts: str | None = Field(default=None, max_length=32)
    topic: str | None = Field(default=None, sa_column=Column(Text))
    setup_done: str = Field(default="", max_length=200)
    responders: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    missing_responders: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    phase: str = Field(default="investigating", max_length=20)
    description: str | None = Field(default=None, sa_column=Column(Text))
    declared_by: str | None = Field(default=None, max_length=64)
    mitigated_at: datetime | None = Field(default=None, sa_column=_utc_column())
    last_update_at: datetime | None = Field(default=None, sa_column=_utc_column())
    next_update_at: datetime | None = Field(default=None, sa_column=_utc_column(index=True))
    nudged_at: datetime | None = Field(default=None, sa_column=_utc_column())


class IncidentRef(SQLModel, table=True):
    """Links a source's incident (PagerDuty incident, Opsgenie alert,
    Alertmanager group) to the firebell incident it belongs to."""

    __tablename__ = "incident_refs"

    source: str = Field(primary_key=True, max_length=32)
    ref: str = Field(primary_key=True, max_length=400)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    resolved: bool = False


class IncidentRole(SQLModel, table=True):
    """Who holds a role (commander, comms, scribe) in an incident."""

    __tablename__ = "incident_roles"

    incident_id: int = Field(foreign_key="incidents.id", primary_key=True)
    role: str = Field(primary_key=True, max_length=20)
    user_id: str = Field(max_length=64)
    assigned_at: datetime = Field(sa_column=_utc_column(nullable=False))
    assigned_by: str | None = Field(default=None, max_length=64)


class TimelineEntry(SQLModel, table=True):
    """Something that happened to an incident, and who did it."""

    __tablename__ = "timeline"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True)
    at: datetime = Field(sa_column=_utc_column(nullable=False))
    kind: str = Field(max_length=40)
    actor: str | None = Field(default=None, max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))


class Job(SQLModel, table=True):
    """Durable pending work (Slack and pager calls).

    Jobs in one ``lane`` run one at a time in id order, so an incident's
    channel exists before anything is posted into it.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_lane_pending", "lane", "done_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    lane: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    run_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
    attempts: int = 0
    locked_by: str | None = Field(default=None, max_length=64)
    locked_until: datetime | None = Field(default=None, sa_column=_utc_column())
    done_at: datetime | None = Field(default=None, sa_column=_utc_column())
    failed: bool = False
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class Lease(SQLModel, table=True):
    """A named lease so one process at a time does singleton work (ingest)."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=_utc_column(nullable=False))


class RunbookRun(SQLModel, table=True):
    """One runbook run: its plan, who asked and approved, where it reports, how it ended."""

    __tablename__ = "runbook_runs"

    id: int | None = Field(default=None, primary_key=True)
    runbook: str = Field(max_length=63)
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", index=True)
    origin: str = Field(max_length=20)
    params: str = Field(sa_column=Column(Text, nullable=False))
    plan: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=20, index=True)
    requested_by: str = Field(max_length=200)
    approved_by: str | None = Field(default=None, max_length=200)
    channel_id: str | None = Field(default=None, max_length=64)
    message_ts: str | None = Field(default=None, max_length=32)
    progress_ts: str | None = Field(default=None, max_length=32)
    cancel_requested: bool = False
    runner: str | None = Field(default=None, max_length=64)
    results: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column())


class RunbookAudit(SQLModel, table=True):
    """The audit trail of runbook runs: every request, approval, step and result."""

    __tablename__ = "runbook_audit"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runbook_runs.id", index=True)
    at: datetime = Field(sa_column=_utc_column(nullable=False))
    actor: str | None = Field(default=None, max_length=200)
    action: str = Field(max_length=40)
    detail: str = Field(sa_column=Column(Text, nullable=False))


class Subscriber(SQLModel, table=True):
    """Someone who gets customer notices: an email address or a browser push subscription."""

    __tablename__ = "subscribers"
    __table_args__ = (
        UniqueConstraint("segment", "email", name="uq_subscribers_segment_email"),
        Index("ix_subscribers_segment_active", "segment", "unsubscribed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    segment: str = Field(max_length=63)
    email: str | None = Field(default=None, max_length=320)
    push_endpoint: str | None = Field(default=None, sa_column=Column(Text, unique=True))
    push_p256dh: str | None = Field(default=None, max_length=200)
    push_auth: str | None = Field(default=None, max_length=64)
    locale: str = Field(default="en", max_length=16)
    components: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    source: str = Field(default="import", max_length=20)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    unsubscribed_at: datetime | None = Field(default=None, sa_column=_utc_column())


class Notice(SQLModel, table=True):
    """One customer notice: what the commander wrote, for which segments."""

    __tablename__ = "notices"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", index=True)
    status: str = Field(max_length=20)
    impact: str = Field(default="minor", max_length=20)
    components: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))
    next_update_at: datetime | None = Field(default=None, sa_column=_utc_column())
    segments: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    channels: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=20, index=True)
    created_by: str = Field(max_length=200)
    approved_by: str | None = Field(default=None, max_length=200)
    report_channel: str | None = Field(default=None, max_length=64)
    report_ts: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
    sent_at: datetime | None = Field(default=None, sa_column=_utc_column())


class NoticeBody(SQLModel, table=True):
    """A notice rendered once per segment × channel × locale (recipients only add their links)."""

    __tablename__ = "notice_bodies"

    notice_id: int = Field(foreign_key="notices.id", primary_key=True)
    segment: str = Field(primary_key=True, max_length=63)
    channel: str = Field(primary_key=True, max_length=20)
    locale: str = Field(primary_key=True, max_length=16)
    subject: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str | None = Field(default=None, sa_column=Column(Text))


class NoticeDelivery(SQLModel, table=True):
    """The outbox: one row per recipient × channel, claimed, sent, retried or dead-lettered."""

    __tablename__ = "notice_deliveries"
    __table_args__ = (
        Index("ix_notice_deliveries_due", "state", "run_at"),
        Index("ix_notice_deliveries_queue", "state", "id"),
        Index("ix_notice_deliveries_notice", "notice_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notices.id")
    subscriber_id: int | None = Field(default=None, foreign_key="subscribers.id")
    channel: str = Field(max_length=20)
    segment: str = Field(max_length=63)
    locale: str = Field(max_length=16)
    target: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=16)
    attempts: int = 0
    run_at: datetime = Field(sa_column=_utc_column(nullable=False))
    locked_by: str | None = Field(default=None, max_length=64)
    locked_until: datetime | None = Field(default=None, sa_column=_utc_column())
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    sent_at: datetime | None = Field(default=None, sa_column=_utc_column())


class StatuspageIncident(SQLModel, table=True):
    """Which Atlassian Statuspage incident mirrors a firebell incident."""

    __tablename__ = "statuspage_incidents"

    incident_id: int = Field(foreign_key="incidents.id", primary_key=True)
    statuspage_id: str = Field(max_length=64)


class AppSecret(SQLModel, table=True):
    """Keys firebell makes for itself on first start (e.g. for signing unsubscribe links)."""

    __tablename__ = "app_secrets"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)
