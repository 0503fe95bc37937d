"""The clock tick: an APScheduler 3.x job that asks the reminder service to
claim whatever is due.

The scheduler only ticks. What is due lives in the database (see
``bot.incidents.reminders``), so its one job stays in memory, and a tick that is
skipped, late, or run by another replica at the same moment changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

JOB_ID = "status-update-tick"
# How long stop() lets a tick in flight finish before cancelling it; a
# cancelled tick only rolls its transaction back.
STOP_GRACE_SECONDS = 5.0


class TickScheduler:
    """Calls ``tick`` every ``interval`` seconds on the running event loop."""

    def __init__(self, tick: Callable[[], Awaitable[int]], interval: float) -> None:
        self._tick = tick
        self._interval = interval
        self._scheduler: AsyncIOScheduler | None = None
        self._in_flight: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        """Start ticking; call from inside the event loop that runs the app."""
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_job(
            self._run_tick,
            IntervalTrigger(seconds=self._interval, timezone=UTC),
            id=JOB_ID,
            name="claim due status updates",
            # A slow tick (database busy) must not pile up behind itself, and
            # missed runs collapse into one: the next tick sees all that is due.
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(1, math.ceil(self._interval)),
            # First tick right away: anything that came due while no firebell
            # ran goes out now, not one interval later.
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop ticking; a tick in flight may finish first (briefly)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None or not scheduler.running:
            return
        # Pause first and let a running tick commit: shutting down straight
        # away would cancel it mid-transaction (harmless, it rolls back, but
        # APScheduler logs the cancellation as a job failure).
        scheduler.pause()
        # A tick submitted just now starts (and registers) on this iteration.
        await asyncio.sleep(0)
        pending = set(self._in_flight)
        if pending:
            _done, late = await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        scheduler.shutdown(wait=False)
        # AsyncIOScheduler shuts down on the next loop iteration; let it.
        await asyncio.sleep(0)

    async def _run_tick(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            # One bad tick (database away for a moment) must not stop the
            # next ones or the app; the work is still due and the next tick
            # claims it.
            log.exception("status-update tick failed; the next tick tries again")
        finally:
            if task is not None:
                self._in_flight.discard(task)
