"""Browser push through the whole outbox: a subscription from the status page,
a notice, the push service decrypting what it got, and a dropped subscription
being removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import SystemClock
from bot.notices.config import NoticesConfig
from bot.notices.dispatch import NoticeDispatcher
from bot.notices.model import NoticeDraft, NoticeStatus
from bot.notices.render import NoticeRenderer
from bot.notices.service import NoticeService
from bot.notices.status_store import PushSubscription, add_subscriber
from bot.notices.webpush import (
    WebPushSender,
    application_server_key,
    generate_vapid_private_key_pem,
    vapid_keys_from_pem,
)
from bot.store.database import create_engine
from bot.store.migrate import migrate
from tests.notices.push_endpoint import PushEndpoint

CONFIG = NoticesConfig.model_validate(
    {"segments": {"consumer": {"channels": ["push"], "variant": "plain", "locales": ["fr", "en"]}}}
)


@pytest.fixture
def push() -> Iterator[PushEndpoint]:
    with PushEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'firebell.db'}")
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_a_notice_reaches_a_browser_and_a_dropped_one_is_forgotten(
    engine: AsyncEngine, push: PushEndpoint
) -> None:
    clock = SystemClock()
    pem = generate_vapid_private_key_pem()
    public = application_server_key(vapid_keys_from_pem(pem))
    first = push.subscribe(public)
    second = push.subscribe(public)
    for subscription in (first, second):
        await add_subscriber(
            engine,
            PushSubscription(subscription.endpoint, subscription.keys),
            segment="consumer",
            locale="fr",
            now=clock.now(),
        )
    sender = WebPushSender(
        pem, "mailto:status@acme.test", httpx.AsyncClient(), allow_http=True, push_hosts=None
    )
    dispatcher = NoticeDispatcher(
        engine, {"push": sender}, clock, "test", public_url="https://status.acme.test"
    )
    service = NoticeService(engine, CONFIG, clock, NoticeRenderer(CONFIG))

    await service.send(
        NoticeDraft(
            status=NoticeStatus.IDENTIFIED, message="Les paiements échouent.", incident_title="Paiements"
        ),
        created_by="U1",
    )
    while await dispatcher.drain_once():
        pass
    bodies = sorted((m.subscription_id, m.json()["title"], m.json()["body"]) for m in push.messages)
    assert bodies == sorted(
        (s.id, "Paiements: cause identifiée", "Les paiements échouent.") for s in (first, second)
    )

    push.drop(second)
    await service.send(NoticeDraft(status=NoticeStatus.RESOLVED, message="C'est réparé."), created_by="U1")
    while await dispatcher.drain_once():
        pass
    await dispatcher.close()
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text("select push_endpoint is null, unsubscribed_at is not null from subscribers order by id")
            )
        ).all()
        failed = await connection.scalar(
            text("select count(*) from notice_deliveries where state = 'failed'")
        )
    assert [tuple(r) for r in rows] == [(0, 0), (1, 1)]
    assert failed == 1
    assert len(push.messages) == 3
