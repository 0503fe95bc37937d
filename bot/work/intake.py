"""Stores accepted webhook deliveries durably, many per transaction.

A webhook is answered 202 only once its delivery is committed. Committing each
delivery on its own would cap intake at the database's commit rate, so
concurrent deliveries wait together and are written in one transaction (group
commit); each caller still learns whether its delivery was new or a redelivery.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.event import AlertEvent, event_to_dict
from bot.clock import Clock
from bot.store.database import dialect_insert
from bot.store.tables import Delivery
from bot.work.priority import IntakePriority

log = logging.getLogger(__name__)

DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
MAX_BATCH = 500


@dataclass
class _Pending:
    source: str
    delivery_key: str
    events: str
    future: asyncio.Future[bool]


class DeliveryWriter:
    """Group-commits deliveries; ``store`` returns True for a new delivery."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        on_commit: Callable[[], None],
        priority: IntakePriority | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._on_commit = on_commit
        self._priority = priority or IntakePriority()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # Executed with a list of rows (SQLAlchemy's "insertmanyvalues"), the
        # statement is compiled once and cached; a multi-row .values(rows)
        # statement is never cached and would be compiled for every batch.
        self._statement = (
            dialect_insert(engine)(DELIVERIES)
            .on_conflict_do_nothing(index_elements=["source", "delivery_key"])
            .returning(DELIVERIES.c.source, DELIVERIES.c.delivery_key)
        )

    async def store(self, source: str, delivery_key: str, events: Sequence[AlertEvent]) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._priority.intake_active()
        body = json.dumps([event_to_dict(e) for e in events], separators=(",", ":"))
        await self._queue.put(_Pending(source, delivery_key, body, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                new_keys = await self._write(batch)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.future.done():
                        item.future.cancel()
                raise
            except Exception as exc:
                log.exception("storing %d deliveries failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            seen: set[tuple[str, str]] = set()
            for item in batch:
                key = (item.source, item.delivery_key)
                # Two copies in one batch: the first is the new one.
                is_new = key in new_keys and key not in seen
                seen.add(key)
                if not item.future.done():
                    item.future.set_result(is_new)
            if new_keys:
                self._on_commit()

    async def _write(self, batch: list[_Pending]) -> set[tuple[str, str]]:
        now = self._clock.now()
        rows = [
            {"source": p.source, "delivery_key": p.delivery_key, "received_at": now, "events": p.events}
            for p in batch
        ]
        async with self._engine.begin() as connection:
            result = await connection.execute(self._statement, rows)
            return {(r.source, r.delivery_key) for r in result}
