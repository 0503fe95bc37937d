"""A unit of work for incident changes: read once, change in memory, write once.

The ingest loop applies deliveries fifty at a time. Applied statement by
statement, each alert event cost a dozen round trips through the database
driver, and that, not Slack or HTTP, capped how fast an alert storm was
absorbed. ``IncidentBatch`` reads the source refs and incidents a batch
touches in two queries, keeps every change in memory while the events are
applied in order (each event sees the ones before it), and writes the
changes back with one statement per table in ``flush``.

Channel messages are merged: the lines one incident gets in a batch become one
post, and they are appended to that incident's post still waiting in the job
queue when there is one. In a storm the channel gets a few messages listing
what happened, in order, instead of hundreds; at a normal pace every event
still gets its own message straight away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.incidents.model import IncidentView, incident_view
from bot.incidents.records import INCIDENTS, POST, REFS, SYNC_CARD, TIMELINE, lane, timeline_row
from bot.store import jobs

# A merged post stays well under Slack's 4,000-character advice for one message.
MAX_POST_CHARS = 3000


@dataclass
class RefState:
    """A source's alert/incident and the firebell incident it belongs to."""

    incident_id: int
    resolved: bool


@dataclass
class _Job:
    lane: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


class IncidentBatch:
    """Pending incident changes inside the caller's transaction."""

    def __init__(self, connection: AsyncConnection, now: datetime) -> None:
        self.connection = connection
        self.now = now
        self._refs: dict[tuple[str, str], RefState | None] = {}
        self._rows: dict[int, dict[str, Any] | None] = {}
        self._changed: dict[int, dict[str, Any]] = {}
        self._new_refs: list[dict[str, Any]] = []
        self._ref_resolved: dict[tuple[str, str], bool] = {}
        self._timeline: list[dict[str, Any]] = []
        self._jobs: list[_Job] = []

    # -- reading -------------------------------------------------------------

    async def preload(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the refs ``(source, ref)`` and their incidents in two queries."""
        wanted = {key for key in keys if key not in self._refs}
        if not wanted:
            return
        rows = await self.connection.execute(
            select(REFS.c.source, REFS.c.ref, REFS.c.incident_id, REFS.c.resolved).where(
                tuple_(REFS.c.source, REFS.c.ref).in_(sorted(wanted))
            )
        )
        for row in rows:
            self._refs[(row.source, row.ref)] = RefState(row.incident_id, bool(row.resolved))
        for key in wanted:
            self._refs.setdefault(key, None)
        await self._load_incidents(state.incident_id for state in self._refs.values() if state is not None)

    async def ref(self, source: str, ref: str) -> RefState | None:
        if (source, ref) not in self._refs:
            await self.preload([(source, ref)])
        return self._refs[(source, ref)]

    async def incident(self, incident_id: int) -> IncidentView | None:
        """The incident as this batch has left it so far; None if there is no such incident."""
        if incident_id not in self._rows:
            await self._load_incidents([incident_id])
        row = self._rows[incident_id]
        return None if row is None else incident_view(row)

    async def _load_incidents(self, ids: Iterable[int]) -> None:
        missing = sorted({i for i in ids if i not in self._rows})
        if not missing:
            return
        rows = await self.connection.execute(select(INCIDENTS).where(INCIDENTS.c.id.in_(missing)))
        for row in rows:
            self._rows[row.id] = dict(row._mapping)
        for incident_id in missing:
            self._rows.setdefault(incident_id, None)

    # -- changing ------------------------------------------------------------

    def change(self, incident_id: int, values: Mapping[str, Any]) -> None:
        """Set columns of an incident this batch has read."""
        row = self._rows.get(incident_id)
        if row is None:
            raise KeyError(f"incident #{incident_id} was not read in this batch")
        row.update(values)
        self._changed.setdefault(incident_id, {}).update(values)

    def forget(self, incident_id: int) -> None:
        """Drop what was read of an incident written directly (read it again when needed)."""
        self._rows.pop(incident_id, None)

    def add_ref(self, source: str, ref: str, incident_id: int) -> None:
        self._refs[(source, ref)] = RefState(incident_id, False)
        self._new_refs.append({"source": source, "ref": ref, "incident_id": incident_id, "resolved": False})

    def set_ref_resolved(self, source: str, ref: str, resolved: bool) -> None:
        state = self._refs.get((source, ref))
        if state is not None:
            state.resolved = resolved
        self._ref_resolved[(source, ref)] = resolved

    def record(
        self, incident_id: int, kind: str, actor: str | None, text: str, *, post: str | None = None
    ) -> None:
        """A timeline entry, and the line that tells the channel about it."""
        self._timeline.append(timeline_row(incident_id, self.now, kind, actor, text))
        if post is not None:
            self.post(incident_id, post)

    def post(self, incident_id: int, text: str) -> None:
        # A card refresh renders whatever is current when it runs, so lines
        # may join a post queued before one.
        lane_name = lane(incident_id)
        last = next(
            (job for job in reversed(self._jobs) if job.lane == lane_name and job.kind != SYNC_CARD), None
        )
        if last is not None and last.kind == POST and _fits(last.payload, text):
            last.payload["text"] += "\n" + text
        else:
            self._jobs.append(_Job(lane_name, POST, {"text": text}))

    def refresh_card(self, incident_id: int) -> None:
        lane_name = lane(incident_id)
        if not any(job.lane == lane_name and job.kind == SYNC_CARD for job in self._jobs):
            self._jobs.append(_Job(lane_name, SYNC_CARD))

    def enqueue(self, incident_id: int, kind: str, payload: Mapping[str, Any]) -> None:
        self._jobs.append(_Job(lane(incident_id), kind, dict(payload)))

    # -- writing -------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything pending; the batch can go on being used afterwards."""
        connection = self.connection
        if self._new_refs:
            await connection.execute(insert(REFS), self._new_refs)
        if self._ref_resolved:
            await connection.execute(
                update(REFS)
                .where(REFS.c.source == bindparam("ref_source"), REFS.c.ref == bindparam("ref_ref"))
                .values(resolved=bindparam("ref_resolved")),
                [
                    {"ref_source": source, "ref_ref": ref, "ref_resolved": resolved}
                    for (source, ref), resolved in self._ref_resolved.items()
                ],
            )
        await self._flush_incidents()
        if self._timeline:
            await connection.execute(insert(TIMELINE), self._timeline)
        await self._flush_jobs()
        self._new_refs, self._ref_resolved, self._timeline, self._jobs = [], {}, [], []
        self._changed = {}

    async def _flush_incidents(self) -> None:
        # Only the columns this batch changed: on PostgreSQL a Slack action
        # may have set others meanwhile.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for incident_id, values in self._changed.items():
            columns = tuple(sorted(values))
            params = {f"new_{column}": values[column] for column in columns}
            params["incident_id"] = incident_id
            shapes.setdefault(columns, []).append(params)
        for columns, params_list in shapes.items():
            await self.connection.execute(
                update(INCIDENTS)
                .where(INCIDENTS.c.id == bindparam("incident_id"))
                .values({column: bindparam(f"new_{column}") for column in columns}),
                params_list,
            )

    async def _flush_jobs(self) -> None:
        pending = self._jobs
        if not pending:
            return
        card_lanes = {job.lane for job in pending if job.kind == SYNC_CARD}
        covered = await jobs.lanes_waiting(self.connection, card_lanes, SYNC_CARD)
        pending = [job for job in pending if not (job.kind == SYNC_CARD and job.lane in covered)]
        merged = await self._merge_into_waiting_posts(pending)
        pending = [job for job in pending if id(job) not in merged]
        await jobs.add_jobs(
            self.connection, [jobs.job_row(job.lane, job.kind, job.payload, self.now) for job in pending]
        )

    async def _merge_into_waiting_posts(self, pending: list[_Job]) -> set[int]:
        """Append each lane's first pending post to the post still waiting in its lane."""
        first_posts: dict[str, _Job] = {}
        decided: set[str] = set()
        for job in pending:
            if job.lane in decided or job.kind == SYNC_CARD:
                continue
            decided.add(job.lane)
            if job.kind == POST:
                first_posts[job.lane] = job
        waiting = await jobs.last_waiting(self.connection, list(first_posts), POST, passable=(SYNC_CARD,))
        payloads: dict[int, dict[str, Any]] = {}
        merged: set[int] = set()
        for name, target in waiting.items():
            job = first_posts[name]
            if _fits(target.payload, job.payload["text"]):
                payloads[target.id] = {
                    **target.payload,
                    "text": f"{target.payload['text']}\n{job.payload['text']}",
                }
                merged.add(id(job))
        await jobs.set_payloads(self.connection, payloads)
        return merged


def _fits(payload: Mapping[str, Any], text: str) -> bool:
    return len(str(payload.get("text", ""))) + 1 + len(text) <= MAX_POST_CHARS
