"""The durable job queue: enqueue inside a caller's transaction, claim, finish.

Jobs in one lane run strictly one after another in id order, whichever
process claims them; different lanes run in parallel. A claim is a lease: a
worker killed mid-job leaves a lease that expires, and the job runs again.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from bot.store.tables import Job

JOBS = Job.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    lane: str
    kind: str
    payload: dict[str, Any]
    attempts: int


def job_row(lane: str, kind: str, payload: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The values of a new job, for ``add_jobs``."""
    return {
        "lane": lane,
        "kind": kind,
        "payload": json.dumps(dict(payload)),
        "run_at": now,
        "attempts": 0,
        "failed": False,
        "created_at": now,
    }


async def add_jobs(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``job_row`` values in the caller's transaction, one statement for all."""
    if rows:
        await connection.execute(insert(JOBS), list(rows))


async def lanes_waiting(connection: AsyncConnection, lanes: Collection[str], kind: str) -> set[str]:
    """Which of ``lanes`` already hold a ``kind`` job that no worker has claimed."""
    if not lanes:
        return set()
    rows = await connection.execute(
        select(JOBS.c.lane)
        .where(
            JOBS.c.lane.in_(list(lanes)),
            JOBS.c.kind == kind,
            JOBS.c.done_at.is_(None),
            JOBS.c.locked_by.is_(None),
        )
        .distinct()
    )
    return {str(lane) for lane in rows.scalars()}


@dataclass(frozen=True)
class WaitingJob:
    """A job no worker has started yet."""

    id: int
    lane: str
    payload: dict[str, Any]


async def last_waiting(
    connection: AsyncConnection, lanes: Collection[str], kind: str, passable: Collection[str] = ()
) -> dict[str, WaitingJob]:
    """For each of ``lanes``, its last job of ``kind`` when no worker has
    started it and only jobs of ``passable`` kinds, not started either, come
    after it.

    On PostgreSQL the returned rows stay locked until the caller commits, so no
    worker claims a job the caller is about to change (workers skip locked rows).
    """
    if not lanes:
        return {}
    pending = await connection.execute(
        select(JOBS.c.id, JOBS.c.lane, JOBS.c.kind, JOBS.c.locked_by, JOBS.c.attempts)
        .where(JOBS.c.lane.in_(list(lanes)), JOBS.c.done_at.is_(None))
        .order_by(JOBS.c.id.desc())
    )
    found: dict[str, int] = {}
    decided: set[str] = set()
    for row in pending:
        if row.lane in decided:
            continue
        untouched = row.locked_by is None and row.attempts == 0
        if untouched and row.kind == kind:
            found[row.lane] = row.id
        if not (untouched and row.kind in passable):
            decided.add(row.lane)
    if not found:
        return {}
    query = select(JOBS.c.id, JOBS.c.lane, JOBS.c.payload).where(
        JOBS.c.id.in_(list(found.values())), JOBS.c.locked_by.is_(None)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return {
        row.lane: WaitingJob(row.id, row.lane, json.loads(row.payload))
        for row in await connection.execute(query)
    }


async def set_payloads(connection: AsyncConnection, payloads: Mapping[int, Mapping[str, Any]]) -> None:
    """Replace the payloads of jobs returned by ``last_waiting``."""
    if payloads:
        await connection.execute(
            update(JOBS).where(JOBS.c.id == bindparam("job_id")).values(payload=bindparam("new_payload")),
            [{"job_id": job_id, "new_payload": json.dumps(dict(p))} for job_id, p in payloads.items()],
        )


async def enqueue(
    connection: AsyncConnection,
    *,
    lane: str,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    coalesce: bool = False,
) -> bool:
    """Add a job in the caller's transaction.

    With ``coalesce``, a job of the same kind already waiting (not yet
    claimed) in the lane makes this one redundant: it will see the same state.
    Returns whether a job was added.
    """
    if coalesce and await lanes_waiting(connection, [lane], kind):
        return False
    await add_jobs(connection, [job_row(lane, kind, payload, now)])
    return True


class JobQueue:
    """Claims and settles jobs for one worker identity."""

    def __init__(self, engine: AsyncEngine, worker_id: str, lease: timedelta) -> None:
        self._engine = engine
        self._worker_id = worker_id
        self._lease = lease

    async def claim(self, now: datetime, limit: int) -> list[ClaimedJob]:
        """Lease up to ``limit`` due jobs, at most one per lane, each the
        oldest unfinished job of its lane."""
        earlier = aliased(JOBS)
        head_of_lane = ~exists().where(
            earlier.c.lane == JOBS.c.lane,
            earlier.c.done_at.is_(None),
            earlier.c.id < JOBS.c.id,
        )
        candidates = (
            select(JOBS.c.id)
            .where(
                JOBS.c.done_at.is_(None),
                JOBS.c.run_at <= now,
                or_(JOBS.c.locked_until.is_(None), JOBS.c.locked_until < now),
                head_of_lane,
            )
            .order_by(JOBS.c.run_at, JOBS.c.id)
            .limit(limit)
        )
        if self._engine.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        statement = (
            update(JOBS)
            .where(JOBS.c.id.in_(candidates.scalar_subquery()))
            .values(
                locked_by=self._worker_id,
                locked_until=now + self._lease,
                attempts=JOBS.c.attempts + 1,
            )
            .returning(JOBS.c.id, JOBS.c.lane, JOBS.c.kind, JOBS.c.payload, JOBS.c.attempts)
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return [
            ClaimedJob(id=r.id, lane=r.lane, kind=r.kind, payload=json.loads(r.payload), attempts=r.attempts)
            for r in rows
        ]

    @property
    def lease(self) -> timedelta:
        return self._lease

    async def renew(self, job_ids: list[int], now: datetime) -> None:
        """Extend the leases of jobs this worker is still running."""
        if not job_ids:
            return
        async with self._engine.begin() as connection:
            await connection.execute(
                update(JOBS)
                .where(JOBS.c.id.in_(job_ids), JOBS.c.locked_by == self._worker_id)
                .values(locked_until=now + self._lease)
            )

    async def complete(self, job: ClaimedJob, now: datetime) -> None:
        await self._settle(job, done_at=now, locked_by=None, locked_until=None, last_error=None)

    async def retry(self, job: ClaimedJob, now: datetime, delay: float, error: str) -> None:
        await self._settle(
            job,
            run_at=now + timedelta(seconds=delay),
            locked_by=None,
            locked_until=None,
            last_error=error[:2000],
        )

    async def dead_letter(self, job: ClaimedJob, now: datetime, error: str) -> None:
        await self._settle(
            job, done_at=now, failed=True, locked_by=None, locked_until=None, last_error=error[:2000]
        )

    async def _settle(self, job: ClaimedJob, **values: Any) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                update(JOBS)
                .where(and_(JOBS.c.id == job.id, JOBS.c.locked_by == self._worker_id))
                .values(**values)
            )

    async def pending_count(self) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(JOBS).where(JOBS.c.done_at.is_(None))
            )
        return int(count or 0)
