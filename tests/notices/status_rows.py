"""Rows for status page tests, written straight into the tables (the notice
service that normally writes them is not needed to test the page)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.tables import Incident, Notice

INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
NOTICES = Notice.__table__  # type: ignore[attr-defined]


async def add_incident(
    engine: AsyncEngine, title: str, *, opened_at: datetime, status: str = "triggered"
) -> int:
    async with engine.begin() as connection:
        result = await connection.execute(
            INCIDENTS.insert().values(
                title=title,
                service="checkout",
                severity=2,
                status=status,
                source="pagerduty",
                teams="[]",
                responders="[]",
                missing_responders="[]",
                opened_at=opened_at,
                updated_at=opened_at,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])


async def add_notice(
    engine: AsyncEngine,
    incident_id: int | None,
    status: str,
    message: str,
    *,
    at: datetime,
    impact: str = "minor",
    components: Sequence[str] = (),
    state: str = "sent",
    segments: Sequence[str] = (),
    channels: Sequence[str] = (),
) -> int:
    async with engine.begin() as connection:
        result = await connection.execute(
            NOTICES.insert().values(
                incident_id=incident_id,
                status=status,
                impact=impact,
                components=json.dumps(list(components)),
                message=message,
                segments=json.dumps(list(segments)),
                channels=json.dumps(list(channels)),
                state=state,
                created_by="U_COMMANDER",
                created_at=at,
                sent_at=at if state == "sent" else None,
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])


def now() -> datetime:
    return datetime.now(UTC)
