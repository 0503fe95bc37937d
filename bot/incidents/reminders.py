"""Status-update reminders: claim what is due, queue it, carry it out.

Due work lives in the database, not in a scheduler's memory: an incident's
``next_update_at`` says when its next status update is due and ``nudged_at``
whether nobody-acknowledged has been said. A tick claims due incidents and
moves those columns in the same transaction that queues the jobs, so a
restart loses nothing and two replicas never queue the same reminder.

``ReminderService`` claims and snoozes; ``ReminderEffects`` runs the queued
``remind``/``digest``/``nudge`` jobs against the chat channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, case, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.severity import Severity
from bot.clock import Clock
from bot.errors import IntegrationError, UserError
from bot.incidents.model import IncidentView, Role, Status
from bot.incidents.records import INCIDENTS, ROLES, TIMELINE, add_timeline, incident_of, lane
from bot.incidents.reminder_messages import Change, digest_message, nudge_message, reminder_message
from bot.incidents.service import load_incident
from bot.ports import ChatChannel
from bot.settings import FirebellConfig
from bot.store import jobs
from bot.store.jobs import ClaimedJob
from bot.store.tables import UTCDateTime
from bot.work.dispatch import JobHandler

log = logging.getLogger(__name__)


# Job kinds carried out by ReminderEffects.
REMIND = "remind"
DIGEST = "digest"
NUDGE = "nudge"

# Timeline kinds this module writes; the digest leaves them out of "what changed".
REMINDER_KINDS = frozenset({"reminder", "digest", "nudge", "snooze"})

# Incidents claimed per tick and kind; the rest wait for the next tick, which
# keeps one tick's transaction (and its row locks) short.
BATCH = 100


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


class ReminderService:
    """Claims due reminders and nudges, and snoozes reminders."""

    def __init__(
        self, engine: AsyncEngine, clock: Clock, config: FirebellConfig, on_jobs: Callable[[], None]
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._config = config
        self._on_jobs = on_jobs

    async def tick(self) -> int:
        """Queue a job for every incident whose update or nudge is due; returns
        how many were queued."""
        now = self._clock.now()
        async with self._engine.begin() as connection:
            queued = await self._claim_updates(connection, now)
            queued += await self._claim_nudges(connection, now)
        if queued:
            log.info("queued %d status-update reminder job(s)", queued)
            # Only after the commit: a woken worker must be able to see the jobs.
            self._on_jobs()
        return queued

    def _claimable(self, *conditions: ColumnElement[bool], order: ColumnElement[Any]) -> ScalarSelect[Any]:
        """The ids of up to BATCH incidents matching ``conditions``, as a
        subquery for an ``UPDATE … WHERE id IN (…)``.

        On PostgreSQL the rows are locked and rows another replica holds are
        skipped; a replica that reads after the other committed sees the moved
        ``next_update_at``/``nudged_at`` and no longer matches. SQLite needs
        nothing more: every write transaction starts with BEGIN IMMEDIATE.
        """
        candidates = select(INCIDENTS.c.id).where(*conditions).order_by(order).limit(BATCH)
        if self._engine.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        return candidates.scalar_subquery()

    def _next_due(self, now: datetime) -> ColumnElement[Any]:
        """``now + cadence(severity)`` per row, NULL where the severity has no
        cadence (any more), which stops its reminders."""
        whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
        for severity in Severity:
            minutes = self._config.updates.cadence(int(severity))
            if minutes > 0:
                # Typed, so SQLite stores it in the same format as every other time.
                due = literal(now + timedelta(minutes=minutes), UTCDateTime())
                whens.append((INCIDENTS.c.severity == int(severity), due))
        if not whens:
            return null()
        return case(*whens, else_=null())

    async def _claim_updates(self, connection: AsyncConnection, now: datetime) -> int:
        ids = self._claimable(
            INCIDENTS.c.status != Status.RESOLVED.value,
            INCIDENTS.c.next_update_at.is_not(None),
            INCIDENTS.c.next_update_at <= now,
            order=INCIDENTS.c.next_update_at,
        )
        # Repeat every cadence until someone posts an update (which moves
        # next_update_at itself).
        claimed = (
            await connection.execute(
                update(INCIDENTS)
                .where(INCIDENTS.c.id.in_(ids))
                .values(next_update_at=self._next_due(now))
                .returning(INCIDENTS.c.id, INCIDENTS.c.severity)
            )
        ).all()
        kind = DIGEST if self._config.updates.digest else REMIND
        queued = 0
        for row in sorted(claimed, key=lambda r: int(r.id)):
            minutes = self._config.updates.cadence(int(row.severity))
            if minutes <= 0:
                continue  # its cadence was switched off since it was scheduled
            await jobs.enqueue(
                connection,
                lane=lane(int(row.id)),
                kind=kind,
                payload={
                    "claimed_at": now.isoformat(),
                    "next_due": (now + timedelta(minutes=minutes)).isoformat(),
                },
                now=now,
            )
            queued += 1
        return queued

    async def _claim_nudges(self, connection: AsyncConnection, now: datetime) -> int:
        minutes = self._config.updates.unacknowledged_nudge_minutes
        if minutes <= 0:
            return 0
        ids = self._claimable(
            INCIDENTS.c.status == Status.TRIGGERED.value,
            INCIDENTS.c.nudged_at.is_(None),
            INCIDENTS.c.opened_at <= now - timedelta(minutes=minutes),
            order=INCIDENTS.c.opened_at,
        )
        claimed = (
            await connection.execute(
                update(INCIDENTS)
                .where(INCIDENTS.c.id.in_(ids))
                .values(nudged_at=now)
                .returning(INCIDENTS.c.id)
            )
        ).all()
        for incident_id in sorted(int(r.id) for r in claimed):
            await jobs.enqueue(
                connection,
                lane=lane(incident_id),
                kind=NUDGE,
                payload={"claimed_at": now.isoformat()},
                now=now,
            )
        return len(claimed)

    async def snooze(self, incident_id: int, actor_name: str) -> datetime:
        """Postpone the incident's next reminder to ``snooze_minutes`` from
        now; returns the new due time."""
        minutes = self._config.updates.snooze_minutes
        now = self._clock.now()
        due = now + timedelta(minutes=minutes)
        async with self._engine.begin() as connection:
            moved = (
                await connection.execute(
                    update(INCIDENTS)
                    .where(
                        INCIDENTS.c.id == incident_id,
                        INCIDENTS.c.status != Status.RESOLVED.value,
                        INCIDENTS.c.next_update_at.is_not(None),
                    )
                    .values(next_update_at=due)
                    .returning(INCIDENTS.c.id)
                )
            ).first()
            if moved is None:
                raise UserError(await self._why_not_snoozable(connection, incident_id))
            await add_timeline(
                connection,
                incident_id,
                now,
                "snooze",
                actor_name,
                f"Status update reminder snoozed for {minutes:g} min by {actor_name}",
            )
        return due

    @staticmethod
    async def _why_not_snoozable(connection: AsyncConnection, incident_id: int) -> str:
        incident = await load_incident(connection, incident_id)
        if incident is None:
            return f"Incident #{incident_id} does not exist."
        if incident.status is Status.RESOLVED:
            return f"Incident #{incident_id} is resolved; there is nothing to snooze."
        return f"Incident #{incident_id} has no status updates scheduled; there is nothing to snooze."


class ReminderEffects:
    """Runs the ``remind``, ``digest`` and ``nudge`` jobs.

    A job posts, then writes its timeline entry. If the process dies between
    the two, the job runs again and posts again: a rare duplicate message is
    better than a reminder that silently never went out.
    """

    def __init__(self, engine: AsyncEngine, chat: ChatChannel, config: FirebellConfig, clock: Clock) -> None:
        self._engine = engine
        self._chat = chat
        self._config = config
        self._clock = clock

    def handlers(self) -> dict[str, JobHandler]:
        """The job kinds this class carries out, for the ``JobDispatcher``."""
        return {REMIND: self._remind, DIGEST: self._digest, NUDGE: self._nudge}

    async def _incident(self, connection: AsyncConnection, incident_id: int) -> IncidentView:
        incident = await load_incident(connection, incident_id)
        if incident is None:
            raise IntegrationError(f"incident #{incident_id} is gone", retryable=False)
        return incident

    def _update_still_due(self, incident: IncidentView, payload: dict[str, Any]) -> bool:
        """Whether a claimed reminder/digest is still worth posting now."""
        if incident.status is Status.RESOLVED or incident.channel_id is None:
            return False
        claimed_at = _parse_time(payload.get("claimed_at"))
        last_update = incident.last_update_at
        if claimed_at is not None and last_update is not None and last_update >= claimed_at:
            return False  # someone posted an update after it came due
        next_due = _parse_time(payload.get("next_due"))
        # A job that waited past the next due time (Slack down, a long
        # backlog) is superseded by the next reminder; don't post both.
        return next_due is None or self._clock.now() < next_due

    async def _remind(self, job: ClaimedJob) -> None:
        incident_id = incident_of(job)
        async with self._engine.connect() as connection:
            incident = await self._incident(connection, incident_id)
            commander = await connection.scalar(
                select(ROLES.c.user_id).where(
                    ROLES.c.incident_id == incident_id, ROLES.c.role == Role.COMMANDER.value
                )
            )
        if not self._update_still_due(incident, job.payload):
            return
        assert incident.channel_id is not None
        message = reminder_message(
            incident, commander, self._clock.now(), self._config.updates.snooze_minutes
        )
        await self._chat.post(incident.channel_id, message.text, message.blocks)
        whom = "the commander" if commander else "the channel"
        await self._timeline(incident_id, "reminder", f"Reminded {whom} that a status update is due")

    async def _digest(self, job: ClaimedJob) -> None:
        incident_id = incident_of(job)
        async with self._engine.connect() as connection:
            incident = await self._incident(connection, incident_id)
            if not self._update_still_due(incident, job.payload):
                return
            changes, since = await self._changes(connection, incident)
        assert incident.channel_id is not None
        message = digest_message(incident, changes, self._clock.now(), since)
        await self._chat.post(incident.channel_id, message.text, message.blocks)
        await self._timeline(
            incident_id, "digest", f"Posted an automatic status digest ({len(changes)} changes)"
        )

    async def _changes(self, connection: AsyncConnection, incident: IncidentView) -> tuple[list[Change], str]:
        """Timeline entries since the last update (or the opening), and after
        the previous digest, so that each digest tells only what is new."""
        last_digest = (
            await connection.execute(
                select(TIMELINE.c.id, TIMELINE.c.at)
                .where(TIMELINE.c.incident_id == incident.id, TIMELINE.c.kind == "digest")
                .order_by(TIMELINE.c.id.desc())
                .limit(1)
            )
        ).first()
        start = incident.last_update_at or incident.opened_at
        conditions = [
            TIMELINE.c.incident_id == incident.id,
            TIMELINE.c.at >= start,
            TIMELINE.c.kind.not_in(sorted(REMINDER_KINDS)),
        ]
        if last_digest is not None:
            # Ids, not times: entries written in the same instant as the
            # previous digest (a frozen test clock, a burst) are not listed twice.
            conditions.append(TIMELINE.c.id > last_digest.id)
        rows = (
            await connection.execute(
                select(TIMELINE.c.at, TIMELINE.c.text).where(and_(*conditions)).order_by(TIMELINE.c.id)
            )
        ).all()
        if last_digest is not None and (
            incident.last_update_at is None or last_digest.at >= incident.last_update_at
        ):
            since = "since the last digest"
        elif incident.last_update_at is not None:
            since = "since the last update"
        else:
            since = "since the incident opened"
        return [Change(at=r.at, text=r.text) for r in rows], since

    async def _nudge(self, job: ClaimedJob) -> None:
        incident_id = incident_of(job)
        async with self._engine.connect() as connection:
            incident = await self._incident(connection, incident_id)
        # Acknowledged (or resolved) while the job waited: nothing to say.
        if incident.status is not Status.TRIGGERED or incident.channel_id is None:
            return
        now = self._clock.now()
        message = nudge_message(incident, now)
        await self._chat.post(incident.channel_id, message.text, message.blocks)
        await self._timeline(incident_id, "nudge", f"Nudged: {message.text}")

    async def _timeline(self, incident_id: int, kind: str, text: str) -> None:
        async with self._engine.begin() as connection:
            await add_timeline(connection, incident_id, self._clock.now(), kind, None, text)
