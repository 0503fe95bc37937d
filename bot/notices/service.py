"""Customer notices as one service for Slack and the command line: check who
may send, render the previews, write the outbox, approve, report figures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import Clock
from bot.errors import UserError
from bot.notices.config import NoticesConfig
from bot.notices.model import NoticeDraft, Rendered
from bot.notices.outbox import DELIVERIES, NOTICES, Figures, create_notice, figures, release_notice
from bot.notices.render import NoticeRenderer
from bot.store.tables import Incident

INCIDENTS = Incident.__table__  # type: ignore[attr-defined]


class NoticeService:
    def __init__(
        self,
        engine: AsyncEngine,
        config: NoticesConfig,
        clock: Clock,
        renderer: NoticeRenderer,
        *,
        on_outbox: Callable[[], None] = lambda: None,
        on_notice: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._config = config
        self._clock = clock
        self.renderer = renderer
        self._on_outbox = on_outbox
        self._on_notice = on_notice

    @property
    def config(self) -> NoticesConfig:
        return self._config

    def preview(self, draft: NoticeDraft) -> list[Rendered]:
        """Every body the notice would send, rendered, nothing stored."""
        if not draft.message.strip():
            raise UserError("The notice needs a message.")
        bodies = self.renderer.render_all(draft)
        if not bodies:
            raise UserError("None of the chosen segments uses the chosen channels.")
        return bodies

    async def send(self, draft: NoticeDraft, *, created_by: str) -> int:
        """Write the notice and its deliveries (or hold it for approval when configured)."""
        bodies = self.preview(draft)
        state = "awaiting_approval" if self._config.require_approval else "sending"
        notice_id = await create_notice(
            self._engine,
            draft,
            bodies,
            self._config,
            created_by=created_by,
            state=state,
            now=self._clock.now(),
            ntfy_topics=self._config.ntfy.topics if self._config.ntfy else None,
        )
        self._on_notice()
        if state == "sending":
            self._on_outbox()
        return notice_id

    async def approve(self, notice_id: int, approver: str) -> None:
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(NOTICES).where(NOTICES.c.id == notice_id))).first()
        if row is None:
            raise UserError(f"Notice #{notice_id} does not exist.")
        if row.state != "awaiting_approval":
            raise UserError(f"Notice #{notice_id} is not waiting for approval (it is {row.state}).")
        if row.created_by == approver:
            raise UserError("A second person must approve this notice: not the one who wrote it.")
        await release_notice(self._engine, notice_id, approver, self._config, self._clock.now())
        self._on_outbox()

    async def set_report(self, notice_id: int, channel: str, ts: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                update(NOTICES).where(NOTICES.c.id == notice_id).values(report_channel=channel, report_ts=ts)
            )

    async def report_location(self, notice_id: int) -> tuple[str, str] | None:
        """(channel, ts) of the notice's delivery message in Slack, once posted."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(NOTICES.c.report_channel, NOTICES.c.report_ts).where(NOTICES.c.id == notice_id)
                )
            ).first()
        if row is None or row.report_channel is None or row.report_ts is None:
            return None
        return str(row.report_channel), str(row.report_ts)

    async def first_notice_delay(self, notice_id: int) -> float | None:
        """Seconds from the incident's start to its first notice, when ``notice_id`` is that notice."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(NOTICES.c.incident_id, NOTICES.c.created_at).where(NOTICES.c.id == notice_id)
                )
            ).first()
            if row is None or row.incident_id is None:
                return None
            earlier = await connection.scalar(
                select(func.count())
                .select_from(NOTICES)
                .where(NOTICES.c.incident_id == row.incident_id, NOTICES.c.id < notice_id)
            )
            opened = await connection.scalar(
                select(INCIDENTS.c.opened_at).where(INCIDENTS.c.id == row.incident_id)
            )
        if earlier or opened is None:
            return None
        return float((row.created_at - opened).total_seconds())

    async def figures(self, notice_id: int) -> Figures:
        return await figures(self._engine, notice_id)

    async def outstanding(self, notice_id: int) -> bool:
        """Whether any delivery of the notice still waits for an outcome (an
        index lookup: cheap enough to ask after every batch)."""
        async with self._engine.connect() as connection:
            found = await connection.scalar(
                select(DELIVERIES.c.id)
                .where(
                    DELIVERIES.c.notice_id == notice_id,
                    DELIVERIES.c.state.in_(["pending", "sending", "retry", "committed"]),
                )
                .limit(1)
            )
        return found is not None

    async def mark_sent_when_finished(self, notice_id: int, now: datetime) -> bool:
        """Once every delivery has an outcome, the notice is sent; True then."""
        if await self.outstanding(notice_id):
            return False
        async with self._engine.begin() as connection:
            await connection.execute(
                update(NOTICES)
                .where(NOTICES.c.id == notice_id, NOTICES.c.state == "sending")
                .values(state="sent", sent_at=now)
            )
        return True

    async def notices_for_incident(self, incident_id: int) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(NOTICES).where(NOTICES.c.incident_id == incident_id)
            )
        return int(count or 0)
