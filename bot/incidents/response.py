"""What responders do during an incident: phases, severity, roles, status
updates, the timeline, escalation and declaring new incidents.

Each method runs inside the caller's transaction and queues the Slack and
pager work it implies, like ``IncidentService`` does for alerts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.severity import Severity
from bot.clock import Clock
from bot.commands.grammar import IncidentRef
from bot.errors import UserError
from bot.incidents.card import escape
from bot.incidents.model import Actor, IncidentView, Phase, Role, incident_view
from bot.incidents.records import (
    INCIDENTS,
    INVITE,
    PAGE,
    PAGER_ESCALATE,
    PAGER_SEVERITY,
    ROLES,
    TIMELINE,
    add_timeline,
    pager_refs,
    queue,
    record,
    refresh_card,
)
from bot.incidents.service import IncidentService, load_incident
from bot.settings import FirebellConfig

PHASE_EMOJI = {
    Phase.INVESTIGATING: ":mag:",
    Phase.IDENTIFIED: ":bulb:",
    Phase.MONITORING: ":chart_with_upwards_trend:",
    Phase.RESOLVED: ":white_check_mark:",
}


@dataclass(frozen=True)
class TimelineItem:
    at: datetime
    kind: str
    actor: str | None
    text: str


@dataclass(frozen=True)
class Declaration:
    title: str
    severity: Severity
    service: str
    description: str | None
    private: bool
    page: bool


def duration_text(start: datetime, end: datetime) -> str:
    minutes = max(0, int((end - start).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


class ResponseService:
    def __init__(self, config: FirebellConfig, clock: Clock, incidents: IncidentService) -> None:
        self._config = config
        self._clock = clock
        self._incidents = incidents
        self._channel_number = re.compile(rf"^{re.escape(config.slack.channel_prefix)}-(\d+)(?:-|$)")

    # -- finding the incident ------------------------------------------------

    async def find(
        self, connection: AsyncConnection, *, channel_id: str | None, ref: IncidentRef | None
    ) -> IncidentView:
        """The incident a command means: named explicitly, or this channel's."""
        query = select(INCIDENTS)
        if ref is not None and ref.channel_id:
            query = query.where(INCIDENTS.c.channel_id == ref.channel_id)
        elif ref is not None and ref.channel_name:
            number = self._channel_number.match(ref.channel_name)
            query = query.where(
                INCIDENTS.c.id == int(number[1]) if number else INCIDENTS.c.channel_name == ref.channel_name
            )
        elif channel_id:
            query = query.where(INCIDENTS.c.channel_id == channel_id)
        else:
            query = query.where(INCIDENTS.c.id.is_(None))
        row = (await connection.execute(query.limit(1))).first()
        if row is not None:
            return incident_view(row._mapping)
        if ref is not None:
            name = ref.channel_name or ref.channel_id
            raise UserError(f"`#{name}` is not an incident channel I know.")
        prefix = self._config.slack.channel_prefix
        raise UserError(
            "This is not an incident channel. Run the command in the incident's channel, "
            f"or name it, e.g. `/incident summary #{prefix}-12`."
        )

    # -- state -----------------------------------------------------------------

    async def set_phase(
        self, connection: AsyncConnection, incident: IncidentView, phase: Phase, note: str, actor: Actor
    ) -> None:
        if phase is Phase.RESOLVED:
            raise UserError("Use `/incident resolve [note]` to resolve.")  # handled by the caller
        if incident.phase is phase:
            raise UserError(f"Incident #{incident.id} is already {phase.value}.")
        now = self._clock.now()
        values: dict[str, object] = {"phase": phase.value, "updated_at": now, "last_update_at": now}
        values["next_update_at"] = self._incidents.next_update(int(incident.severity), now)
        if phase is Phase.MONITORING and incident.mitigated_at is None:
            values["mitigated_at"] = now
        await connection.execute(update(INCIDENTS).where(INCIDENTS.c.id == incident.id).values(**values))
        suffix = f": {note}" if note else ""
        await record(
            connection,
            incident.id,
            now,
            "status",
            actor.name,
            f"Status {phase.value} by {actor.name}{suffix}",
            post=f"{PHASE_EMOJI[phase]} *{phase.value.capitalize()}* — {actor.mention}{escape(suffix)}",
        )
        await refresh_card(connection, incident.id, now)

    async def set_severity(
        self, connection: AsyncConnection, incident: IncidentView, severity: Severity, actor: Actor
    ) -> None:
        if incident.severity is severity:
            raise UserError(f"Incident #{incident.id} is already {severity.label}.")
        now = self._clock.now()
        since = incident.last_update_at or incident.opened_at
        await connection.execute(
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident.id)
            .values(
                severity=int(severity),
                updated_at=now,
                next_update_at=None
                if incident.phase is Phase.RESOLVED
                else self._incidents.next_update(int(severity), since),
            )
        )
        await record(
            connection,
            incident.id,
            now,
            "severity",
            actor.name,
            f"Severity {incident.severity.label} → {severity.label} by {actor.name}",
            post=f":bar_chart: Severity {incident.severity.label} → *{severity.label}* by {actor.mention}",
        )
        await refresh_card(connection, incident.id, now)
        for source, ref in await pager_refs(connection, incident.id):
            await queue(
                connection,
                incident.id,
                PAGER_SEVERITY,
                now,
                source=source,
                ref=ref,
                severity=int(severity),
                slack_user_id=actor.slack_user_id,
            )

    # -- roles -----------------------------------------------------------------

    async def roles(self, connection: AsyncConnection, incident_id: int) -> dict[Role, str]:
        rows = await connection.execute(
            select(ROLES.c.role, ROLES.c.user_id).where(ROLES.c.incident_id == incident_id)
        )
        return {Role(role): str(user) for role, user in rows.all()}

    async def assign_role(
        self, connection: AsyncConnection, incident: IncidentView, role: Role, user_id: str, actor: Actor
    ) -> None:
        now = self._clock.now()
        current = (await self.roles(connection, incident.id)).get(role)
        if current == user_id:
            raise UserError(f"<@{user_id}> is already the {role.value}.")
        await connection.execute(
            delete(ROLES).where(and_(ROLES.c.incident_id == incident.id, ROLES.c.role == role.value))
        )
        await connection.execute(
            insert(ROLES).values(
                incident_id=incident.id,
                role=role.value,
                user_id=user_id,
                assigned_at=now,
                assigned_by=actor.slack_user_id,
            )
        )
        await record(
            connection,
            incident.id,
            now,
            "role",
            actor.name,
            f"{role.value} is now {user_id} (set by {actor.name})",
            post=f":bust_in_silhouette: <@{user_id}> is now the *{role.value}* (set by {actor.mention})",
        )
        await queue(connection, incident.id, INVITE, now, user_ids=[user_id])
        await refresh_card(connection, incident.id, now)

    async def take_commander_if_free(
        self, connection: AsyncConnection, incident_id: int, actor: Actor
    ) -> bool:
        """The first responder to acknowledge commands unless someone already does."""
        if actor.slack_user_id is None or Role.COMMANDER in await self.roles(connection, incident_id):
            return False
        now = self._clock.now()
        await connection.execute(
            insert(ROLES).values(
                incident_id=incident_id,
                role=Role.COMMANDER.value,
                user_id=actor.slack_user_id,
                assigned_at=now,
                assigned_by=actor.slack_user_id,
            )
        )
        await record(
            connection,
            incident_id,
            now,
            "role",
            actor.name,
            f"commander is now {actor.slack_user_id} (first to acknowledge)",
            post=f":bust_in_silhouette: {actor.mention} acknowledged first and is the *commander*; "
            "hand over with `/incident role commander @someone`.",
        )
        await refresh_card(connection, incident_id, now)
        return True

    # -- updates and the timeline --------------------------------------------

    async def post_update(
        self, connection: AsyncConnection, incident: IncidentView, text: str, actor: Actor
    ) -> None:
        now = self._clock.now()
        await connection.execute(
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident.id)
            .values(
                last_update_at=now,
                updated_at=now,
                next_update_at=None
                if incident.phase is Phase.RESOLVED
                else self._incidents.next_update(int(incident.severity), now),
            )
        )
        header = (
            f":loudspeaker: *Status update* · #{incident.id} · {incident.severity.label} · "
            f"{incident.phase.value.capitalize()} · {duration_text(incident.opened_at, now)} in"
        )
        await record(
            connection,
            incident.id,
            now,
            "update",
            actor.name,
            text,
            post=f"{header}\n{escape(text)}\n— {actor.mention}",
        )

    async def add_note(
        self,
        connection: AsyncConnection,
        incident_id: int,
        text: str,
        actor: Actor,
        *,
        at: datetime | None = None,
        kind: str = "note",
    ) -> None:
        await add_timeline(connection, incident_id, at or self._clock.now(), kind, actor.name, text)

    async def timeline(
        self, connection: AsyncConnection, incident_id: int, *, since: datetime | None = None
    ) -> list[TimelineItem]:
        query = select(TIMELINE.c.at, TIMELINE.c.kind, TIMELINE.c.actor, TIMELINE.c.text).where(
            TIMELINE.c.incident_id == incident_id
        )
        if since is not None:
            query = query.where(TIMELINE.c.at > since)
        rows = await connection.execute(query.order_by(TIMELINE.c.at, TIMELINE.c.id))
        return [TimelineItem(r.at, r.kind, r.actor, r.text) for r in rows]

    async def last_update(self, connection: AsyncConnection, incident_id: int) -> TimelineItem | None:
        row = (
            await connection.execute(
                select(TIMELINE.c.at, TIMELINE.c.kind, TIMELINE.c.actor, TIMELINE.c.text)
                .where(TIMELINE.c.incident_id == incident_id, TIMELINE.c.kind == "update")
                .order_by(TIMELINE.c.at.desc(), TIMELINE.c.id.desc())
                .limit(1)
            )
        ).first()
        return None if row is None else TimelineItem(row.at, row.kind, row.actor, row.text)

    # -- escalation ------------------------------------------------------------

    async def escalate(
        self,
        connection: AsyncConnection,
        incident: IncidentView,
        actor: Actor,
        *,
        user_id: str | None = None,
        service: str | None = None,
    ) -> str:
        """Queue the escalation; returns what the responder is told."""
        now = self._clock.now()
        refs = await pager_refs(connection, incident.id)
        if service is not None:
            target = self._config.services.get(service)
            if target is None:
                known = ", ".join(sorted(self._config.services)) or "none configured"
                raise UserError(f"I don't know the service `{service}` (known: {known}).")
            if not target.pageable:
                raise UserError(
                    f"Service `{service}` has no `pagerduty_service_id` or `opsgenie_team` to page."
                )
            await queue(
                connection, incident.id, PAGE, now, service=service, slack_user_id=actor.slack_user_id
            )
            what = f"Paging *{escape(service)}*"
        elif user_id is not None:
            await queue(connection, incident.id, INVITE, now, user_ids=[user_id])
            await self._escalate_in_pagers(connection, incident.id, refs, now, actor, responder=user_id)
            what = f"Escalated to <@{user_id}>"
        else:
            if not refs:
                raise UserError(
                    "This incident is not linked to PagerDuty or Opsgenie: escalate to a service "
                    "(`/incident escalate checkout`) or a person (`/incident escalate @bob`)."
                )
            await self._escalate_in_pagers(connection, incident.id, refs, now, actor)
            what = "Escalating to the next level in the pager"
        await record(
            connection,
            incident.id,
            now,
            "escalate",
            actor.name,
            f"{what} (by {actor.name})".replace("*", ""),
            post=f":arrow_double_up: {what} — {actor.mention}",
        )
        return what

    @staticmethod
    async def _escalate_in_pagers(
        connection: AsyncConnection,
        incident_id: int,
        refs: list[tuple[str, str]],
        now: datetime,
        actor: Actor,
        *,
        responder: str | None = None,
    ) -> None:
        """One escalation job per pager incident behind this one: to the next
        level, or adding ``responder``."""
        extra = {"responder": responder} if responder else {}
        for source, ref in refs:
            await queue(
                connection,
                incident_id,
                PAGER_ESCALATE,
                now,
                source=source,
                ref=ref,
                slack_user_id=actor.slack_user_id,
                **extra,
            )

    # -- declaring -------------------------------------------------------------

    async def declare(self, connection: AsyncConnection, declaration: Declaration, actor: Actor) -> int:
        now = self._clock.now()
        event = AlertEvent(
            source=Source.SLACK,
            delivery_key=secrets.token_hex(8),
            source_ref=f"declared-{secrets.token_hex(8)}",
            action=AlertAction.TRIGGER,
            title=declaration.title,
            service=declaration.service,
            occurred_at=now,
            actor=actor.name,
        )
        incident_id = await self._incidents.open_incident(
            connection,
            event,
            now,
            severity=declaration.severity,
            description=declaration.description,
            declared_by=actor.slack_user_id,
            private=declaration.private,
        )
        if actor.slack_user_id:
            await queue(connection, incident_id, INVITE, now, user_ids=[actor.slack_user_id])
            await self.take_commander_if_free(connection, incident_id, actor)
        if declaration.page:
            service = self._config.services.get(declaration.service)
            if service is None or not service.pageable:
                raise UserError(
                    f"Service `{declaration.service}` has no `pagerduty_service_id` or `opsgenie_team` "
                    "configured, so I can't page it. Declare without paging, or configure the service."
                )
            await queue(
                connection,
                incident_id,
                PAGE,
                now,
                service=declaration.service,
                slack_user_id=actor.slack_user_id,
            )
        return incident_id

    async def load(self, connection: AsyncConnection, incident_id: int) -> IncidentView:
        incident = await load_incident(connection, incident_id)
        if incident is None:
            raise UserError(f"Incident #{incident_id} does not exist.")
        return incident
