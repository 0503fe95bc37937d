"""The database side of the Statuspage mirror: a notice's facts, and which
Statuspage incident mirrors which firebell incident."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import IntegrationError
from bot.notices.model import Impact, NoticeStatus
from bot.notices.outbox import NOTICES
from bot.notices.statuspage import NoticeFacts
from bot.store.database import dialect_insert
from bot.store.tables import StatuspageIncident

MIRRORS = StatuspageIncident.__table__  # type: ignore[attr-defined]


class StatuspageMirrorStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def facts(self, notice_id: int) -> NoticeFacts:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(NOTICES).where(NOTICES.c.id == notice_id))).first()
        if row is None or row.incident_id is None:
            raise IntegrationError(f"notice #{notice_id} has no incident to mirror", retryable=False)
        return NoticeFacts(
            incident_id=row.incident_id,
            status=NoticeStatus(row.status),
            impact=Impact(row.impact),
            components=tuple(json.loads(row.components)),
        )

    async def lookup(self, incident_id: int) -> str | None:
        async with self._engine.connect() as connection:
            value = await connection.scalar(
                select(MIRRORS.c.statuspage_id).where(MIRRORS.c.incident_id == incident_id)
            )
        return None if value is None else str(value)

    async def remember(self, incident_id: int, statuspage_id: str) -> None:
        insert = dialect_insert(self._engine)(MIRRORS).values(
            incident_id=incident_id, statuspage_id=statuspage_id
        )
        async with self._engine.begin() as connection:
            await connection.execute(
                insert.on_conflict_do_update(
                    index_elements=["incident_id"], set_={"statuspage_id": statuspage_id}
                )
            )
