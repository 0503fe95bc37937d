"""Writing down what happened to an incident, inside the caller's transaction:
timeline entries, messages for its channel, and card refreshes.

Also the names of the job kinds and lanes that carry those effects out.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import jobs
from bot.store.jobs import ClaimedJob
from bot.store.tables import Incident, IncidentRef, IncidentRole, TimelineEntry

INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
REFS = IncidentRef.__table__  # type: ignore[attr-defined]
ROLES = IncidentRole.__table__  # type: ignore[attr-defined]
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]

# Job kinds the side-effect runners understand.
OPEN_CHANNEL = "open_channel"
POST = "post"
SYNC_CARD = "sync_card"
PAGER_UPDATE = "pager_update"
PAGER_SEVERITY = "pager_severity"
PAGER_ESCALATE = "pager_escalate"
PAGE = "page"
INVITE = "invite"
# Runs the self-healing runbooks whose rules match a newly opened incident.
RUNBOOK_AUTOMATION = "runbook_automation"

PAGER_SOURCES = ("pagerduty", "opsgenie")


def lane(incident_id: int) -> str:
    return f"incident:{incident_id}"


def incident_of(job: ClaimedJob) -> int:
    """The incident a job in an incident lane belongs to."""
    return int(job.lane.split(":", 1)[1])


def timeline_row(incident_id: int, now: datetime, kind: str, actor: str | None, text: str) -> dict[str, Any]:
    return {"incident_id": incident_id, "at": now, "kind": kind, "actor": actor, "text": text}


async def add_timeline(
    connection: AsyncConnection,
    incident_id: int,
    now: datetime,
    kind: str,
    actor: str | None,
    text: str,
) -> None:
    await connection.execute(insert(TIMELINE).values(timeline_row(incident_id, now, kind, actor, text)))


async def queue(
    connection: AsyncConnection, incident_id: int, kind: str, now: datetime, **payload: Any
) -> None:
    """Queue a side effect in the incident's lane (run in order, after commit)."""
    await jobs.enqueue(connection, lane=lane(incident_id), kind=kind, payload=payload, now=now)


async def record(
    connection: AsyncConnection,
    incident_id: int,
    now: datetime,
    kind: str,
    actor: str | None,
    text: str,
    *,
    post: str | None = None,
) -> None:
    """A timeline entry, and the message that tells the channel about it."""
    await add_timeline(connection, incident_id, now, kind, actor, text)
    if post is not None:
        await queue(connection, incident_id, POST, now, text=post)


async def refresh_card(connection: AsyncConnection, incident_id: int, now: datetime) -> None:
    await jobs.enqueue(connection, lane=lane(incident_id), kind=SYNC_CARD, payload={}, now=now, coalesce=True)


async def pager_refs(connection: AsyncConnection, incident_id: int) -> list[tuple[str, str]]:
    """The pager incidents/alerts (source, ref) behind a firebell incident."""
    rows = await connection.execute(
        select(REFS.c.source, REFS.c.ref).where(
            REFS.c.incident_id == incident_id, REFS.c.source.in_(PAGER_SOURCES)
        )
    )
    return [(str(source), str(ref)) for source, ref in rows.all()]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
