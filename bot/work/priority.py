"""Webhook intake first: background loops step aside while deliveries arrive.

Everything shares one core and, on SQLite, one write lock. During a burst of
webhooks the loops that fold deliveries into incidents and run Slack jobs wait
until intake has been quiet for a moment, but never longer than ``max_wait``
at a time, so a storm that lasts minutes still makes steady progress.
"""

from __future__ import annotations

import asyncio


class IntakePriority:
    def __init__(self, quiet: float = 0.02, max_wait: float = 0.5) -> None:
        self._quiet = quiet
        self._max_wait = max_wait
        self._last_intake = float("-inf")

    def intake_active(self) -> None:
        """A delivery is being stored right now."""
        self._last_intake = asyncio.get_running_loop().time()

    def busy(self) -> bool:
        """Deliveries arrived within the last ``quiet`` seconds."""
        return asyncio.get_running_loop().time() - self._last_intake < self._quiet

    async def wait_turn(self) -> None:
        """Return once intake has been quiet for ``quiet`` seconds, or after ``max_wait``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        # Polling on purpose: what we wait for is the absence of events.
        while loop.time() - self._last_intake < self._quiet and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(self._quiet)
