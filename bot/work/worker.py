"""The job worker: claims due jobs, runs them concurrently, settles each one.

Failures that may pass are retried with exponential backoff (or the delay the
service asked for); permanent ones are dead-lettered with their reason, so one
bad job never blocks the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock
from bot.errors import IntegrationError
from bot.metrics import Metrics
from bot.store.jobs import ClaimedJob, JobQueue
from bot.work.priority import IntakePriority
from bot.work.wakeup import Wakeup

log = logging.getLogger(__name__)

BURST_CONCURRENCY = 4

JobRunner = Callable[[ClaimedJob], Awaitable[None]]


def backoff_seconds(attempts: int, ceiling: float) -> float:
    """2, 4, 8 … seconds after each failed attempt, capped at ``ceiling``."""
    return float(min(ceiling, 2 ** min(attempts, 20)))


class JobWorker:
    """Keeps up to ``concurrency`` jobs running until stopped."""

    def __init__(
        self,
        queue: JobQueue,
        runner: JobRunner,
        clock: Clock,
        metrics: Metrics,
        *,
        concurrency: int,
        poll_seconds: float,
        max_backoff: float,
        priority: IntakePriority | None = None,
    ) -> None:
        self._queue = queue
        self._runner = runner
        self._clock = clock
        self._metrics = metrics
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._max_backoff = max_backoff
        self._wake = Wakeup()
        self._priority = priority or IntakePriority()
        self._running: dict[asyncio.Task[None], int] = {}
        self._renewed_at = 0.0

    def wake(self) -> None:
        """New work was committed: look now instead of at the next poll."""
        self._wake.poke()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                limit = BURST_CONCURRENCY if self._priority.busy() else self._concurrency
                room = min(limit, self._concurrency) - len(self._running)
                claimed: list[ClaimedJob] = []
                if room > 0:
                    await self._priority.wait_turn()
                    try:
                        claimed = await self._queue.claim(self._clock.now(), room)
                    except Exception:
                        log.exception("claiming jobs failed; trying again shortly")
                for job in claimed:
                    task = asyncio.create_task(self._run_one(job))
                    self._running[task] = job.id
                    task.add_done_callback(self._finished)
                await self._renew_leases()
                if claimed and len(claimed) == room:
                    # There may be more due right away once a slot frees up.
                    if self._running:
                        await asyncio.wait(
                            self._running, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED
                        )
                    continue
                await self._wake.sleep(self._poll)
        finally:
            for task in list(self._running):
                task.cancel()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    async def _renew_leases(self) -> None:
        # A lease shorter than the longest job would let a second worker
        # start a job still running here; renewing keeps it ours while we
        # live, and lets it expire soon after a crash.
        loop = asyncio.get_running_loop()
        if loop.time() - self._renewed_at < self._queue.lease.total_seconds() / 3:
            return
        self._renewed_at = loop.time()
        try:
            await self._queue.renew(list(self._running.values()), self._clock.now())
        except Exception:
            log.exception("renewing job leases failed; trying again shortly")

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        # A finished job may unblock the next one in its lane.
        self._wake.poke()

    async def _run_one(self, job: ClaimedJob) -> None:
        try:
            await self._runner(job)
        except IntegrationError as exc:
            if exc.retryable:
                delay = exc.retry_after or backoff_seconds(job.attempts, self._max_backoff)
                log.warning(
                    "job %s (%s, %s) failed, retrying in %.0fs: %s", job.id, job.kind, job.lane, delay, exc
                )
                await self._queue.retry(job, self._clock.now(), delay, str(exc))
                self._metrics.jobs.labels(job.kind, "retry").inc()
            else:
                log.error("job %s (%s, %s) failed for good: %s", job.id, job.kind, job.lane, exc)
                await self._queue.dead_letter(job, self._clock.now(), str(exc))
                self._metrics.jobs.labels(job.kind, "dead").inc()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug, not an outage: keep the job, but don't hammer.
            log.exception("job %s (%s, %s) crashed", job.id, job.kind, job.lane)
            delay = backoff_seconds(job.attempts + 4, self._max_backoff)
            await self._queue.retry(job, self._clock.now(), delay, f"{type(exc).__name__}: {exc}")
            self._metrics.jobs.labels(job.kind, "retry").inc()
            return
        await self._queue.complete(job, self._clock.now())
        self._metrics.jobs.labels(job.kind, "done").inc()
