"""The outbox never lets two dispatchers send one delivery: a sender whose
lease was taken over is stopped at its point of no return."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from sqlalchemy import text

from bot.clock import SystemClock
from bot.notices.config import NoticesConfig
from bot.notices.dispatch import LeaseLost, NoticeDispatcher
from bot.notices.model import NoticeDraft, NoticeStatus, Outgoing
from bot.notices.render import NoticeRenderer
from bot.notices.sender import Commit
from bot.notices.service import NoticeService
from bot.notices.subscribers import import_csv
from bot.store.database import create_engine
from bot.store.migrate import migrate


class Stealing:
    """Lets another dispatcher take the delivery over just before committing."""

    channel: ClassVar[str] = "email"

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.sent: list[str] = []
        self.refused: list[str] = []

    async def send(self, message: Outgoing, commit: Commit) -> None:
        async with self.engine.begin() as connection:  # type: ignore[attr-defined]
            await connection.execute(
                text("update notice_deliveries set locked_by = 'other', state = 'sending' where id = :id"),
                {"id": message.delivery_id},
            )
        try:
            await commit()
        except LeaseLost:
            self.refused.append(message.target)
            raise
        self.sent.append(message.target)

    async def close(self) -> None:
        return None


async def test_a_lost_lease_stops_the_sender_before_it_sends(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    await migrate(engine)
    clock = SystemClock()
    (tmp_path / "s.csv").write_text("email\na@example.com\nb@example.com\n")
    await import_csv(engine, tmp_path / "s.csv", "everyone", "en", clock.now())
    config = NoticesConfig()
    service = NoticeService(engine, config, clock, NoticeRenderer(config))
    await service.send(NoticeDraft(status=NoticeStatus.INVESTIGATING, message="Looking."), created_by="U1")
    sender = Stealing(engine)
    dispatcher = NoticeDispatcher(engine, {"email": sender}, clock, "me", public_url="https://x")
    await dispatcher.drain_once()
    assert sender.sent == [] and sorted(sender.refused) == ["a@example.com", "b@example.com"]
    async with engine.connect() as connection:
        rows = (await connection.execute(text("select state, locked_by from notice_deliveries"))).all()
    # Still the other dispatcher's to send: untouched by this one.
    assert [tuple(r) for r in rows] == [("sending", "other"), ("sending", "other")]
    await engine.dispose()
