"""The ingest loop: a delivery that cannot be applied never holds up the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from bot.alerts.event import event_to_dict
from bot.alerts.severity import default_severity_mapping
from bot.alerts.sources import alert_sources
from bot.clock import SystemClock
from bot.incidents.service import IncidentService
from bot.metrics import Metrics
from bot.settings import FirebellConfig, load_settings
from bot.store.database import create_engine
from bot.store.migrate import migrate
from bot.store.tables import Delivery, Incident
from bot.work.ingest import IngestLoop
from tests.samples import pagerduty_event, pagerduty_signature

DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
INCIDENTS = Incident.__table__  # type: ignore[attr-defined]


async def test_a_poisoned_delivery_is_set_aside_and_the_batch_still_lands(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    await migrate(engine)
    settings = load_settings({"PAGERDUTY_WEBHOOK_SECRETS": "s"})
    source = alert_sources(settings)["pagerduty"]
    good = []
    for n in range(3):
        body = json.dumps(pagerduty_event(incident_id=f"P{n}", title=f"Outage {n}")).encode()
        source.verify(body, {"x-pagerduty-signature": pagerduty_signature(body, "s")})
        good.append(source.parse(body, {}))
    now = datetime.now(UTC)
    rows = [
        {
            "source": "pagerduty",
            "delivery_key": "good-0",
            "received_at": now,
            "events": json.dumps([event_to_dict(e) for e in good[0]]),
        },
        {
            "source": "pagerduty",
            "delivery_key": "poison",
            "received_at": now,
            "events": json.dumps([{"source": "pagerduty", "action": "explode"}]),
        },
        {
            "source": "pagerduty",
            "delivery_key": "good-1",
            "received_at": now,
            "events": json.dumps([event_to_dict(e) for e in good[1]]),
        },
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(DELIVERIES), rows)
    service = IncidentService(FirebellConfig(), default_severity_mapping(), SystemClock())
    loop = IngestLoop(engine, service, SystemClock(), Metrics(), "w1", lambda: None, poll_seconds=1)
    assert await loop.drain_once() == 3
    async with engine.connect() as connection:
        titles = [t for (t,) in await connection.execute(select(INCIDENTS.c.title).order_by(INCIDENTS.c.id))]
        errors = dict((await connection.execute(select(DELIVERIES.c.delivery_key, DELIVERIES.c.error))).all())
        pending = (
            await connection.execute(select(DELIVERIES.c.id).where(DELIVERIES.c.processed_at.is_(None)))
        ).all()
    assert titles == ["Outage 0", "Outage 1"]
    assert errors["poison"] is not None and errors["good-0"] is None and errors["good-1"] is None
    assert pending == []
    await engine.dispose()
