"""Routes each claimed job to the handler registered for its kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from bot.errors import IntegrationError
from bot.store.jobs import ClaimedJob

JobHandler = Callable[[ClaimedJob], Awaitable[None]]


class JobDispatcher:
    def __init__(self, *registries: Mapping[str, JobHandler]) -> None:
        self._handlers: dict[str, JobHandler] = {}
        for registry in registries:
            self.add(registry)

    def add(self, registry: Mapping[str, JobHandler]) -> None:
        """More job kinds (from services built after the worker)."""
        clash = set(registry) & set(self._handlers)
        if clash:
            raise ValueError(f"job kinds registered twice: {sorted(clash)}")
        self._handlers.update(registry)

    async def run(self, job: ClaimedJob) -> None:
        handler = self._handlers.get(job.kind)
        if handler is None:
            # Written by a newer firebell, perhaps: leave a clear trace.
            raise IntegrationError(f"no handler for job kind {job.kind!r}", retryable=False)
        await handler(job)
