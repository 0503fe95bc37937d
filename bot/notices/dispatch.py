"""The outbox dispatcher: claims due deliveries, sends them, marks them.

Claims are leases (``sending``, ``locked_until``), in batches, so recipients
stream from the database and several replicas share a fan-out (PostgreSQL:
``FOR UPDATE SKIP LOCKED``). Marks are group-committed: ``committed`` marks
are awaited by the sender before its point of no return (see
``bot.notices.sender``); final marks (sent, retry, failed, dead) are written
in batches. After a crash, expired ``sending`` leases go back to ``retry``
(they never reached the point of no return) and expired ``committed`` ones
count as sent: nobody gets a message twice, and only a message past its
mark whose last bytes had not reached the server when the process died (at
most one per connection) can be counted as sent without arriving.

One failing recipient or provider never blocks the others: each delivery
fails, retries with backoff or is dead-lettered on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.errors import FirebellError, IntegrationError
from bot.notices.model import Outgoing, PushKeys
from bot.notices.outbox import BODIES, DELIVERIES, SUBSCRIBERS
from bot.notices.sender import DeliveryFailed, DeliveryUncertain, Sender
from bot.notices.unsubscribe import signing_key, unsubscribe_url
from bot.work.wakeup import Wakeup

log = logging.getLogger(__name__)

BATCH = 500
UNCONFIRMED = "unconfirmed: the sender stopped after the point of no return"
Progress = Callable[[set[int]], None]


def backoff(attempts: int) -> float:
    """30 s, 1 min, 2 min … capped at an hour."""
    return float(min(3600, 30 * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class _Claimed:
    id: int
    notice_id: int
    subscriber_id: int | None
    channel: str
    segment: str
    locale: str
    target: str
    attempts: int


class LeaseLost(IntegrationError):
    """Another dispatcher took the delivery over; this one must not send it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class _Marks:
    """Group-commits delivery marks; ``committed`` waits for durability.

    A ``committed`` mark only lands on a row this dispatcher still holds
    (``sending``, locked by it): if its lease ran out and another dispatcher
    took the row, the sender is told before its point of no return and
    stops, so the other one is the only sender.
    """

    def __init__(self, engine: AsyncEngine, identity: str, on_flush: Callable[[set[int]], None]) -> None:
        self._engine = engine
        self._identity = identity
        self._on_flush = on_flush
        self._committed: list[tuple[int, asyncio.Future[None]]] = []
        self._final: list[dict[str, Any]] = []
        self._touched: set[int] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        # Only rows still ours: one taken over meanwhile belongs to its new holder.
        self._final_statement = (
            update(DELIVERIES)
            .where(DELIVERIES.c.id == bindparam("d_id"), DELIVERIES.c.locked_by == identity)
            .values(
                state=bindparam("d_state"),
                run_at=bindparam("d_run_at"),
                last_error=bindparam("d_error"),
                sent_at=bindparam("d_sent_at"),
                locked_by=None,
                locked_until=None,
            )
        )

    async def commit(self, delivery_id: int) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._committed.append((delivery_id, future))
        self._wake.set()
        await future

    def final(
        self,
        notice_id: int,
        delivery_id: int,
        state: str,
        run_at: datetime,
        error: str | None,
        sent_at: datetime | None,
    ) -> None:
        self._final.append(
            {
                "d_id": delivery_id,
                "d_state": state,
                "d_run_at": run_at,
                "d_error": error,
                "d_sent_at": sent_at,
            }
        )
        self._touched.add(notice_id)
        self._wake.set()

    async def run(self) -> None:
        """Flush whenever marks arrive, until ``stop``. Never cancelled: a
        task cancelled inside a database write can leave SQLite locked."""
        self._stopping = False
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def stop(self, task: asyncio.Task[None]) -> None:
        self._stopping = True
        self._wake.set()
        await task

    async def flush(self) -> None:
        # One flush at a time, in order: a later "sent" must never be
        # overwritten by an earlier "committed" that reached the database late.
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        committed, self._committed = self._committed, []
        final, self._final = self._final, []
        touched, self._touched = self._touched, set()
        if not committed and not final:
            return
        held: set[int] = set()
        try:
            async with self._engine.begin() as connection:
                if committed:
                    rows = await connection.execute(
                        update(DELIVERIES)
                        .where(
                            DELIVERIES.c.id.in_([d for d, _ in committed]),
                            DELIVERIES.c.state == "sending",
                            DELIVERIES.c.locked_by == self._identity,
                        )
                        .values(state="committed")
                        .returning(DELIVERIES.c.id)
                    )
                    held = {int(row.id) for row in rows}
                if final:
                    await connection.execute(self._final_statement, final)
        except asyncio.CancelledError:
            # Stopped mid-write: put everything back for whoever flushes next.
            self._committed = committed + self._committed
            self._final = final + self._final
            self._touched |= touched
            raise
        except Exception as exc:
            for _, future in committed:
                if not future.done():
                    future.set_exception(
                        IntegrationError(f"cannot record the delivery: {exc}", retryable=True)
                    )
            # Final marks are kept for the next flush; the leases protect them meanwhile.
            self._final = final + self._final
            log.exception("recording notice deliveries failed")
            return
        for delivery_id, future in committed:
            if future.done():
                continue
            if delivery_id in held:
                future.set_result(None)
            else:
                future.set_exception(LeaseLost(f"delivery {delivery_id} is no longer ours to send"))
        if touched:
            self._on_flush(touched)


class NoticeDispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        senders: Mapping[str, Sender],
        clock: Clock,
        identity: str,
        *,
        public_url: str,
        max_attempts: int = 6,
        lease: timedelta = timedelta(minutes=5),
        poll_seconds: float = 2.0,
        on_progress: Progress | None = None,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self._engine = engine
        self._senders = senders
        self._clock = clock
        self._identity = identity
        self._public_url = public_url
        self._max_attempts = max_attempts
        self._lease = lease
        self._poll = poll_seconds
        self._on_progress = on_progress or (lambda _ids: None)
        self._on_result = on_result or (lambda _channel, _outcome: None)
        self._marks = _Marks(engine, identity, self._on_progress)
        self._wake = Wakeup()
        self._bodies: dict[tuple[int, str, str, str], tuple[str, str, str | None]] = {}
        self._key: bytes | None = None
        self._marks_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.poke()

    async def run(self) -> None:
        marks = self._marks_task = asyncio.create_task(self._marks.run())
        try:
            while True:
                self._wake.clear()
                try:
                    handled = await self.drain_once()
                except Exception:
                    log.exception("sending notices failed; trying again shortly")
                    handled = 0
                if not handled:
                    await self._wake.sleep(self._poll)
        finally:
            await self._marks.stop(marks)
            await self._marks.flush()

    async def drain_once(self) -> int:
        """Recover expired leases, claim a batch, send it; how many were claimed."""
        await self._recover()
        claimed = await self._claim()
        if not claimed:
            return 0
        outgoing = await self._prepare(claimed)
        # Senders wait on their commit marks: someone must be writing them.
        flusher = None
        if self._marks_task is None or self._marks_task.done():
            flusher = asyncio.create_task(self._marks.run())
        try:
            await asyncio.gather(*(self._deliver(row, message) for row, message in outgoing))
        finally:
            if flusher is not None:
                await self._marks.stop(flusher)
            await self._marks.flush()
        return len(claimed)

    # -- the database side ---------------------------------------------------------

    async def _recover(self) -> None:
        now = self._clock.now()
        expired = and_(DELIVERIES.c.locked_until.is_not(None), DELIVERIES.c.locked_until < now)
        async with self._engine.begin() as connection:
            await connection.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.state == "committed", expired)
                .values(
                    state="sent",
                    sent_at=now,
                    last_error="unconfirmed: the sender stopped after the point of no return",
                    locked_by=None,
                    locked_until=None,
                )
            )
            await connection.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.state == "sending", expired)
                .values(state="retry", run_at=now, locked_by=None, locked_until=None)
            )

    async def release_abandoned(self, gone: Callable[[str], bool]) -> int:
        """Deliveries claimed by a process known to be dead (see ``gone``) are
        settled now rather than when their lease runs out: ``sending`` ones go
        back to the queue, ``committed`` ones count as sent. How many."""
        now = self._clock.now()
        async with self._engine.begin() as connection:
            holders = [
                str(holder)
                for holder in (
                    await connection.execute(
                        select(DELIVERIES.c.locked_by)
                        .where(
                            DELIVERIES.c.state.in_(["sending", "committed"]),
                            DELIVERIES.c.locked_by.is_not(None),
                        )
                        .distinct()
                    )
                ).scalars()
            ]
            dead = [holder for holder in holders if holder != self._identity and gone(holder)]
            if not dead:
                return 0
            owned = DELIVERIES.c.locked_by.in_(dead)
            sent = await connection.execute(
                update(DELIVERIES)
                .where(owned, DELIVERIES.c.state == "committed")
                .values(state="sent", sent_at=now, last_error=UNCONFIRMED, locked_by=None, locked_until=None)
            )
            queued = await connection.execute(
                update(DELIVERIES)
                .where(owned, DELIVERIES.c.state == "sending")
                .values(state="retry", run_at=now, locked_by=None, locked_until=None)
            )
        log.info("took over %d deliveries from stopped processes %s", sent.rowcount + queued.rowcount, dead)
        return int(sent.rowcount + queued.rowcount)

    async def _claim(self) -> list[_Claimed]:
        # New deliveries in id order (index ``state, id``: no sort over the
        # whole outbox), then retries that are due (``state, run_at``). One
        # query for both would sort every waiting row on every claim.
        now = self._clock.now()
        pending = (
            select(DELIVERIES.c.id)
            .where(DELIVERIES.c.state == "pending")
            .order_by(DELIVERIES.c.id)
            .limit(BATCH)
        )
        retries = (
            select(DELIVERIES.c.id)
            .where(DELIVERIES.c.state == "retry", DELIVERIES.c.run_at <= now)
            .order_by(DELIVERIES.c.run_at)
            .limit(BATCH)
        )
        claimed: list[_Claimed] = []
        for due in (pending, retries):
            if len(claimed) >= BATCH:
                break
            claimed += await self._take(due.limit(BATCH - len(claimed)), now)
        return sorted(claimed, key=lambda c: c.id)

    async def _take(self, due: Any, now: datetime) -> list[_Claimed]:
        if self._engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_(due.scalar_subquery()))
            .values(
                state="sending",
                locked_by=self._identity,
                locked_until=now + self._lease,
                attempts=DELIVERIES.c.attempts + 1,
            )
            .returning(
                DELIVERIES.c.id,
                DELIVERIES.c.notice_id,
                DELIVERIES.c.subscriber_id,
                DELIVERIES.c.channel,
                DELIVERIES.c.segment,
                DELIVERIES.c.locale,
                DELIVERIES.c.target,
                DELIVERIES.c.attempts,
            )
        )
        async with self._engine.begin() as connection:
            rows = (await connection.execute(statement)).all()
        return [_Claimed(*row) for row in rows]

    async def _prepare(self, claimed: list[_Claimed]) -> list[tuple[_Claimed, Outgoing | None]]:
        if self._key is None:
            self._key = await signing_key(self._engine)
        keys: dict[int, PushKeys] = {}
        push_ids = [c.subscriber_id for c in claimed if c.channel == "push" and c.subscriber_id is not None]
        async with self._engine.connect() as connection:
            for key in {(c.notice_id, c.segment, c.channel, c.locale) for c in claimed} - self._bodies.keys():
                found = (
                    await connection.execute(
                        select(BODIES.c.subject, BODIES.c.text, BODIES.c.html).where(
                            BODIES.c.notice_id == key[0],
                            BODIES.c.segment == key[1],
                            BODIES.c.channel == key[2],
                            BODIES.c.locale == key[3],
                        )
                    )
                ).first()
                if found is not None:
                    self._bodies[key] = (found.subject, found.text, found.html)
            if push_ids:
                rows = await connection.execute(
                    select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.push_p256dh, SUBSCRIBERS.c.push_auth).where(
                        SUBSCRIBERS.c.id.in_(push_ids)
                    )
                )
                keys = {r.id: PushKeys(r.push_p256dh or "", r.push_auth or "") for r in rows}
        prepared: list[tuple[_Claimed, Outgoing | None]] = []
        for row in claimed:
            body = self._bodies.get((row.notice_id, row.segment, row.channel, row.locale))
            if body is None:
                prepared.append((row, None))
                continue
            subject, text, html = body
            link = (
                unsubscribe_url(self._public_url, row.subscriber_id, self._key) if row.subscriber_id else None
            )
            prepared.append(
                (
                    row,
                    Outgoing(
                        delivery_id=row.id,
                        notice_id=row.notice_id,
                        channel=row.channel,
                        segment=row.segment,
                        locale=row.locale,
                        target=row.target,
                        subject=subject,
                        text=text,
                        html=html,
                        unsubscribe_url=link,
                        push_keys=keys.get(row.subscriber_id) if row.subscriber_id else None,
                    ),
                )
            )
        return prepared

    # -- sending -----------------------------------------------------------------

    async def _deliver(self, row: _Claimed, message: Outgoing | None) -> None:
        now = self._clock.now
        sender = self._senders.get(row.channel)
        if message is None or sender is None:
            why = "no rendered body" if message is None else f"{row.channel} is not configured"
            self._marks.final(row.notice_id, row.id, "failed", now(), why, None)
            self._on_result(row.channel, "failed")
            return
        try:
            await sender.send(message, lambda: self._marks.commit(row.id))
        except LeaseLost:
            log.warning("delivery %s was taken over by another dispatcher; leaving it to them", row.id)
        except DeliveryUncertain as exc:
            self._marks.final(row.notice_id, row.id, "sent", now(), f"unconfirmed: {exc}", now())
            self._on_result(row.channel, "sent")
        except DeliveryFailed as exc:
            self._marks.final(row.notice_id, row.id, "failed", now(), exc.reason[:2000], None)
            self._on_result(row.channel, "failed")
            if exc.gone and row.subscriber_id is not None:
                await self._forget_subscription(row.subscriber_id)
        except (IntegrationError, FirebellError) as exc:
            retry_after = getattr(exc, "retry_after", None)
            if row.attempts >= self._max_attempts:
                self._marks.final(
                    row.notice_id,
                    row.id,
                    "dead",
                    now(),
                    f"gave up after {row.attempts} attempts: {exc}"[:2000],
                    None,
                )
                self._on_result(row.channel, "dead")
            else:
                delay = retry_after or backoff(row.attempts)
                self._marks.final(
                    row.notice_id, row.id, "retry", now() + timedelta(seconds=delay), str(exc)[:2000], None
                )
                self._on_result(row.channel, "retry")
        except Exception as exc:
            # A bug, not an outage: keep the delivery, but slowly.
            log.exception("delivery %s crashed", row.id)
            self._marks.final(
                row.notice_id,
                row.id,
                "retry",
                now() + timedelta(seconds=backoff(row.attempts + 4)),
                f"{type(exc).__name__}: {exc}"[:2000],
                None,
            )
        else:
            self._marks.final(row.notice_id, row.id, "sent", now(), None, now())
            self._on_result(row.channel, "sent")

    async def _forget_subscription(self, subscriber_id: int) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                update(SUBSCRIBERS)
                .where(SUBSCRIBERS.c.id == subscriber_id)
                .values(
                    unsubscribed_at=self._clock.now(), push_endpoint=None, push_p256dh=None, push_auth=None
                )
            )

    async def close(self) -> None:
        for sender in self._senders.values():
            await sender.close()
