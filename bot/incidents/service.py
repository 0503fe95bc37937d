"""The incident state machine: alert events and Slack actions in, incident
rows, timeline entries and queued side effects out.

Every method runs inside the caller's transaction, so a state change and the
work it implies (post to the channel, update the card, tell the pager) are
committed together or not at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.severity import Severity, SeverityMapping, map_severity
from bot.clock import Clock
from bot.errors import UserError
from bot.incidents.batch import IncidentBatch
from bot.incidents.card import escape, source_label
from bot.incidents.grouping import GroupCandidate, pick_group, window_start
from bot.incidents.model import Actor, IncidentView, Phase, Status, incident_view
from bot.incidents.records import (
    INCIDENTS,
    OPEN_CHANNEL,
    PAGER_UPDATE,
    REFS,
    RUNBOOK_AUTOMATION,
    lane,
    pager_refs,
    record,
    refresh_card,
)
from bot.settings import FirebellConfig
from bot.store import jobs

# The dedup key firebell gives incidents it pages for (PagerDuty incident_key,
# Opsgenie alias), so the pager's webhooks find the incident again.
PAGE_DEDUP_KEY = re.compile(r"^firebell-(\d+)$")


def page_dedup_key(incident_id: int) -> str:
    return f"firebell-{incident_id}"


class Outcome(StrEnum):
    OPENED = "opened"
    GROUPED = "grouped"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    incident_id: int | None


async def load_incident(connection: AsyncConnection, incident_id: int) -> IncidentView | None:
    row = (await connection.execute(select(INCIDENTS).where(INCIDENTS.c.id == incident_id))).first()
    return None if row is None else incident_view(row._mapping)


@dataclass(frozen=True)
class Transition:
    """What an action does: the state it leads to (None: no state change),
    the states it may leave, and how it reads in the channel."""

    target: Status | None
    allowed_from: frozenset[Status]
    emoji: str
    verb: str


_ANY = frozenset(Status)
_TRANSITIONS: dict[AlertAction, Transition] = {
    AlertAction.ACKNOWLEDGE: Transition(
        Status.ACKNOWLEDGED, frozenset({Status.TRIGGERED}), ":eyes:", "Acknowledged"
    ),
    AlertAction.UNACKNOWLEDGE: Transition(
        Status.TRIGGERED, frozenset({Status.ACKNOWLEDGED}), ":leftwards_arrow_with_hook:", "Unacknowledged"
    ),
    AlertAction.RESOLVE: Transition(
        Status.RESOLVED, frozenset({Status.TRIGGERED, Status.ACKNOWLEDGED}), ":white_check_mark:", "Resolved"
    ),
    AlertAction.REOPEN: Transition(Status.TRIGGERED, frozenset({Status.RESOLVED}), ":repeat:", "Reopened"),
    AlertAction.ESCALATE: Transition(None, _ANY, ":arrow_double_up:", "Escalated"),
    AlertAction.REASSIGN: Transition(None, _ANY, ":busts_in_silhouette:", "Reassigned"),
    AlertAction.PRIORITY: Transition(None, _ANY, ":bar_chart:", "Priority changed"),
    AlertAction.NOTE: Transition(None, _ANY, ":memo:", "Note"),
}
# Responders move incidents from Slack with the same rules as the pager.
_SLACK_ACTIONS = {
    Status.ACKNOWLEDGED: AlertAction.ACKNOWLEDGE,
    Status.RESOLVED: AlertAction.RESOLVE,
    Status.TRIGGERED: AlertAction.REOPEN,
}


class IncidentService:
    """Applies alert events and responder actions to incidents."""

    def __init__(self, config: FirebellConfig, severity: SeverityMapping, clock: Clock) -> None:
        self._config = config
        self._severity = severity
        self._clock = clock

    # -- alerts from sources -------------------------------------------------

    async def apply(self, connection: AsyncConnection, event: AlertEvent) -> Applied:
        """Fold one alert event into the incidents."""
        return (await self.apply_batch(connection, [event]))[0]

    async def apply_batch(self, connection: AsyncConnection, events: Sequence[AlertEvent]) -> list[Applied]:
        """Fold alert events into the incidents, in order, writing once at the end."""
        batch = IncidentBatch(connection, self._clock.now())
        await batch.preload((event.source.value, event.source_ref) for event in events)
        applied = [await self._apply(batch, event) for event in events]
        await batch.flush()
        return applied

    async def _apply(self, batch: IncidentBatch, event: AlertEvent) -> Applied:
        ref = await batch.ref(event.source.value, event.source_ref)
        if ref is None:
            return await self._first_event(batch, event)
        incident = await batch.incident(ref.incident_id)
        assert incident is not None
        return await self._later_event(batch, incident, ref.resolved, event)

    async def _first_event(self, batch: IncidentBatch, event: AlertEvent) -> Applied:
        # An update for something we never saw open carries enough to open it,
        # except a resolution or a note, which would open a dead incident.
        if event.action in (AlertAction.RESOLVE, AlertAction.NOTE):
            return Applied(Outcome.IGNORED, None)
        paged = await self._paged_by_us(batch, event)
        group = paged if paged is not None else await self._grouping_candidate(batch, event)
        if group is not None:
            incident = await batch.incident(group)
            assert incident is not None
            batch.add_ref(event.source.value, event.source_ref, group)
            batch.change(group, {"alert_count": incident.alert_count + 1, "updated_at": batch.now})
            text = (
                f"{source_label(event.source)} incident opened for this page: {event.title}"
                if paged is not None
                else f"Another alert joined this incident from {source_label(event.source)}: {event.title}"
            )
            batch.record(group, "alert", event.actor, text, post=f":heavy_plus_sign: {escape(text)}")
            batch.refresh_card(group)
            return Applied(Outcome.GROUPED, group)
        incident_id = await self._open(batch, event)
        return Applied(Outcome.OPENED, incident_id)

    async def _paged_by_us(self, batch: IncidentBatch, event: AlertEvent) -> int | None:
        """The incident firebell paged for, when this is the pager's echo of that page."""
        match = PAGE_DEDUP_KEY.match(event.dedup_key or "")
        if match is None:
            return None
        incident = await batch.incident(int(match[1]))
        return None if incident is None else incident.id

    async def _grouping_candidate(self, batch: IncidentBatch, event: AlertEvent) -> int | None:
        rule = self._config.grouping
        start = window_start(rule, batch.now)
        if start is None:
            return None
        # The query must see what this batch changed so far.
        await batch.flush()
        query = select(INCIDENTS.c.id, INCIDENTS.c.service, INCIDENTS.c.source, INCIDENTS.c.opened_at).where(
            INCIDENTS.c.status != Status.RESOLVED.value, INCIDENTS.c.opened_at >= start
        )
        if "service" in rule.by:
            query = query.where(INCIDENTS.c.service == event.service)
        rows = await batch.connection.execute(query)
        candidates = [GroupCandidate(r.id, r.service, r.source, r.opened_at) for r in rows]
        return pick_group(rule, event, candidates, batch.now)

    async def open_incident(
        self,
        connection: AsyncConnection,
        event: AlertEvent,
        now: datetime,
        *,
        severity: Severity | None = None,
        description: str | None = None,
        declared_by: str | None = None,
        private: bool | None = None,
    ) -> int:
        """A new incident for ``event`` (an alert, or a declaration from Slack)."""
        batch = IncidentBatch(connection, now)
        incident_id = await self._open(
            batch, event, severity=severity, description=description, declared_by=declared_by, private=private
        )
        await batch.flush()
        return incident_id

    async def _open(
        self,
        batch: IncidentBatch,
        event: AlertEvent,
        *,
        severity: Severity | None = None,
        description: str | None = None,
        declared_by: str | None = None,
        private: bool | None = None,
    ) -> int:
        now = batch.now
        severity = severity or map_severity(event, self._severity)
        service_config = self._config.service(event.service)
        status = Status.ACKNOWLEDGED if event.action is AlertAction.ACKNOWLEDGE else Status.TRIGGERED
        # Written at once: the id names the incident's lane and its rows.
        incident_id = await batch.connection.scalar(
            insert(INCIDENTS)
            .values(
                title=event.title[:2000] or "Untitled alert",
                service=event.service,
                severity=int(severity),
                status=status.value,
                source=event.source.value,
                source_url=event.url,
                escalation_policy_id=event.escalation_policy_id,
                teams=json.dumps(list(event.teams)),
                private=service_config.private if private is None else private,
                description=description,
                declared_by=declared_by,
                alert_count=1,
                opened_at=now,
                updated_at=now,
                acknowledged_at=now if status is Status.ACKNOWLEDGED else None,
                setup_done="",
                responders="[]",
                missing_responders="[]",
                phase=Phase.INVESTIGATING.value,
                next_update_at=self.next_update(int(severity), now),
            )
            .returning(INCIDENTS.c.id)
        )
        assert incident_id is not None
        batch.forget(incident_id)
        batch.add_ref(event.source.value, event.source_ref, incident_id)
        origin = (
            "declared in Slack"
            if event.source is Source.SLACK
            else f"opened from {source_label(event.source)}"
        )
        batch.record(incident_id, "opened", event.actor, f"{severity.label} incident {origin}: {event.title}")
        batch.enqueue(incident_id, OPEN_CHANNEL, {})
        if self._config.runbooks.automation and event.source is not Source.SLACK:
            # The alert's labels live only in the delivery: the rules are matched on them later.
            batch.enqueue(
                incident_id,
                RUNBOOK_AUTOMATION,
                {
                    "source": event.source.value,
                    "service": event.service,
                    "severity": int(severity),
                    "labels": event.labels,
                },
            )
        return int(incident_id)

    async def _later_event(
        self,
        batch: IncidentBatch,
        incident: IncidentView,
        ref_resolved: bool,
        event: AlertEvent,
    ) -> Applied:
        now = batch.now
        action = event.action
        if action is AlertAction.TRIGGER:
            # A firing group or alert that comes back after resolving reopens.
            if not ref_resolved and incident.status is not Status.RESOLVED:
                if event.detail and event.source is Source.ALERTMANAGER:
                    # The group's set of firing alerts changed.
                    return self._note_only(batch, incident, event, "Firing now")
                return Applied(Outcome.UNCHANGED, incident.id)
            action = AlertAction.REOPEN
        transition = _TRANSITIONS[action]
        target, verb = transition.target, transition.verb
        values: dict[str, Any] = {}
        if action is AlertAction.RESOLVE:
            batch.set_ref_resolved(event.source.value, event.source_ref, True)
            if await self._open_refs(batch, incident.id):
                # Other alerts of a grouped incident are still firing.
                return self._note_only(batch, incident, event, "One of its alerts resolved")
        if action is AlertAction.REOPEN:
            batch.set_ref_resolved(event.source.value, event.source_ref, False)
        if target is not None:
            if incident.status not in transition.allowed_from:
                return Applied(Outcome.UNCHANGED, incident.id)
            values.update(self._status_values(target, now, int(incident.severity)))
        if action is AlertAction.PRIORITY:
            severity = map_severity(event, self._severity)
            if severity is incident.severity:
                return Applied(Outcome.UNCHANGED, incident.id)
            values["severity"] = int(severity)
            verb = f"Severity changed to {severity.label}"
        values["updated_at"] = now
        batch.change(incident.id, values)
        text = f"{verb} in {source_label(event.source)}"
        if event.actor:
            text += f" by {event.actor}"
        if event.detail:
            text += f": {event.detail}"
        batch.record(incident.id, action.value, event.actor, text, post=f"{transition.emoji} {escape(text)}")
        if target is not None or action is AlertAction.PRIORITY:
            batch.refresh_card(incident.id)
        return Applied(Outcome.CHANGED, incident.id)

    def _note_only(
        self, batch: IncidentBatch, incident: IncidentView, event: AlertEvent, what: str
    ) -> Applied:
        text = f"{what} in {source_label(event.source)}: {event.title}"
        batch.record(incident.id, "alert", event.actor, text, post=f":information_source: {escape(text)}")
        return Applied(Outcome.CHANGED, incident.id)

    async def _open_refs(self, batch: IncidentBatch, incident_id: int) -> int:
        # The query must see the refs this batch added or resolved.
        await batch.flush()
        rows = await batch.connection.execute(
            select(REFS.c.ref).where(REFS.c.incident_id == incident_id, REFS.c.resolved.is_(False))
        )
        return len(rows.all())

    # -- actions from Slack --------------------------------------------------

    async def act(
        self, connection: AsyncConnection, incident_id: int, target: Status, actor: Actor, *, note: str = ""
    ) -> IncidentView:
        """A responder acknowledges or resolves from Slack; the pager follows."""
        incident = await load_incident(connection, incident_id)
        if incident is None:
            raise UserError(f"Incident #{incident_id} does not exist.")
        transition = _TRANSITIONS[_SLACK_ACTIONS[target]]
        if incident.status is target:
            raise UserError(f"Incident #{incident_id} is already {target.value}.")
        if incident.status not in transition.allowed_from:
            raise UserError(
                f"Incident #{incident_id} is {incident.status.value}; it cannot be {target.value} now."
            )
        now = self._clock.now()
        await connection.execute(
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident_id)
            .values(updated_at=now, **self._status_values(target, now, int(incident.severity)))
        )
        if target is Status.RESOLVED:
            await connection.execute(
                update(REFS).where(REFS.c.incident_id == incident_id).values(resolved=True)
            )
        verb = transition.verb
        await record(
            connection,
            incident_id,
            now,
            target.value,
            actor.name,
            f"{verb} in Slack by {actor.name}" + (f": {note}" if note else ""),
            post=f"{transition.emoji} {verb} by {actor.mention}" + (f": {escape(note)}" if note else ""),
        )
        await refresh_card(connection, incident_id, now)
        if target in (Status.ACKNOWLEDGED, Status.RESOLVED):
            for source, ref in await pager_refs(connection, incident_id):
                await jobs.enqueue(
                    connection,
                    lane=lane(incident_id),
                    kind=PAGER_UPDATE,
                    payload={
                        "source": source,
                        "ref": ref,
                        "status": target.value,
                        "slack_user_id": actor.slack_user_id,
                    },
                    now=now,
                )
        updated = await load_incident(connection, incident_id)
        assert updated is not None
        return updated

    # -- shared --------------------------------------------------------------

    def next_update(self, severity: int, after: datetime) -> datetime | None:
        """When the next status update is due, counting from ``after``."""
        minutes = self._config.updates.cadence(severity)
        return after + timedelta(minutes=minutes) if minutes > 0 else None

    def _status_values(self, target: Status, now: datetime, severity: int | None = None) -> dict[str, Any]:
        values: dict[str, Any] = {"status": target.value}
        if target is Status.ACKNOWLEDGED:
            values["acknowledged_at"] = now
        elif target is Status.RESOLVED:
            values["resolved_at"] = now
            values["phase"] = Phase.RESOLVED.value
            values["next_update_at"] = None
        else:
            values["resolved_at"] = None
            if severity is not None:
                values["phase"] = Phase.INVESTIGATING.value
                values["next_update_at"] = self.next_update(severity, now)
                values["nudged_at"] = None
        return values
