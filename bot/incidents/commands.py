"""Responder actions on incidents, each in its own transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.incidents.model import Actor, IncidentView, Status
from bot.incidents.service import IncidentService


class IncidentCommands:
    """What responders do from Slack; queued effects start at once."""

    def __init__(self, engine: AsyncEngine, service: IncidentService, on_jobs: Callable[[], None]) -> None:
        self._engine = engine
        self._service = service
        self._on_jobs = on_jobs

    async def acknowledge(self, incident_id: int, actor: Actor) -> IncidentView:
        return await self._move(incident_id, Status.ACKNOWLEDGED, actor)

    async def resolve(self, incident_id: int, actor: Actor) -> IncidentView:
        return await self._move(incident_id, Status.RESOLVED, actor)

    async def _move(self, incident_id: int, target: Status, actor: Actor) -> IncidentView:
        async with self._engine.begin() as connection:
            incident = await self._service.act(connection, incident_id, target, actor)
        self._on_jobs()
        return incident
