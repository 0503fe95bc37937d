"""A poll loop's alarm clock: sleep until poked or until the poll interval."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """``poke`` from whoever committed new work; ``sleep`` in the loop."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
