"""Folds stored deliveries into incidents, in the order they arrived.

One process at a time holds the ``ingest`` lease, so deduplication and
grouping see every earlier alert; deliveries are applied in batches, each
batch in one transaction together with the jobs it queues.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.alerts.event import event_from_dict
from bot.clock import Clock
from bot.incidents.service import IncidentService, Outcome
from bot.metrics import Metrics
from bot.store.database import dialect_insert
from bot.store.tables import Delivery, Lease
from bot.work.priority import IntakePriority
from bot.work.wakeup import Wakeup

log = logging.getLogger(__name__)

DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
LEASES = Lease.__table__  # type: ignore[attr-defined]
LEASE_NAME = "ingest"
# Small batches keep SQLite's write lock short for the webhook writer, and
# smaller still while webhooks are arriving: their answers wait for it.
BATCH = 50
BURST_BATCH = 10


class IngestLoop:
    def __init__(
        self,
        engine: AsyncEngine,
        service: IncidentService,
        clock: Clock,
        metrics: Metrics,
        worker_id: str,
        on_jobs: Callable[[], None],
        *,
        poll_seconds: float,
        lease: timedelta = timedelta(seconds=30),
        priority: IntakePriority | None = None,
    ) -> None:
        self._engine = engine
        self._service = service
        self._clock = clock
        self._metrics = metrics
        self._worker_id = worker_id
        self._on_jobs = on_jobs
        self._poll = poll_seconds
        self._lease = lease
        self._wake = Wakeup()
        self._priority = priority or IntakePriority()
        self._insert = dialect_insert(engine)

    def wake(self) -> None:
        self._wake.poke()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self._priority.wait_turn()
            try:
                applied = await self.drain_once()
            except Exception:
                log.exception("applying deliveries failed; trying again shortly")
                applied = 0
            if applied:
                continue
            await self._wake.sleep(self._poll)

    async def drain_once(self) -> int:
        """Apply one batch of pending deliveries; returns how many."""
        now = self._clock.now()
        async with self._engine.begin() as connection:
            if not await self._hold_lease(connection):
                return 0
            rows = (
                await connection.execute(
                    select(DELIVERIES.c.id, DELIVERIES.c.source, DELIVERIES.c.events)
                    .where(DELIVERIES.c.processed_at.is_(None))
                    .order_by(DELIVERIES.c.id)
                    .limit(BURST_BATCH if self._priority.busy() else BATCH)
                )
            ).all()
            try:
                # One savepoint and one write per table for the whole batch.
                async with connection.begin_nested():
                    applied = await self._apply_deliveries(connection, rows)
            except Exception:
                log.warning("a delivery in this batch cannot be applied; applying one by one", exc_info=True)
                applied = await self._apply_one_by_one(connection, rows)
            for source, outcome in applied:
                self._metrics.alert_events.labels(source, outcome.value).inc()
                if outcome is Outcome.OPENED:
                    self._metrics.incidents_opened.labels(source).inc()
            if rows:
                await connection.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id.in_([r.id for r in rows]))
                    .values(processed_at=now)
                )
        if rows:
            self._on_jobs()
        return len(rows)

    async def _apply_deliveries(
        self, connection: AsyncConnection, rows: Sequence[Row[Any]]
    ) -> list[tuple[str, Outcome]]:
        sources: list[str] = []
        events = []
        for row in rows:
            for data in json.loads(row.events):
                sources.append(row.source)
                events.append(event_from_dict(data))
        results = await self._service.apply_batch(connection, events)
        return [(source, result.outcome) for source, result in zip(sources, results, strict=True)]

    async def _apply_one_by_one(
        self, connection: AsyncConnection, rows: Sequence[Row[Any]]
    ) -> list[tuple[str, Outcome]]:
        applied: list[tuple[str, Outcome]] = []
        for row in rows:
            try:
                async with connection.begin_nested():
                    applied += await self._apply_deliveries(connection, [row])
            except Exception as exc:
                # A delivery this code cannot apply must not hold up the ones
                # behind it; it stays in the table with its error.
                log.exception("delivery %s could not be applied", row.id)
                await connection.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id == row.id)
                    .values(error=f"{type(exc).__name__}: {exc}"[:2000])
                )
        return applied

    async def _hold_lease(self, connection: AsyncConnection) -> bool:
        now = self._clock.now()
        statement = (
            self._insert(LEASES)
            .values(name=LEASE_NAME, holder=self._worker_id, expires_at=now + self._lease)
            .on_conflict_do_update(
                index_elements=["name"],
                set_={"holder": self._worker_id, "expires_at": now + self._lease},
                where=or_(LEASES.c.holder == self._worker_id, LEASES.c.expires_at < now),
            )
            .returning(LEASES.c.holder)
        )
        holder = (await connection.execute(statement)).scalar()
        return bool(holder == self._worker_id)

    async def pending_count(self) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(DELIVERIES).where(DELIVERIES.c.processed_at.is_(None))
            )
        return int(count or 0)
