"""Applying alert events in batches: same result as one by one, fewer messages.

Run on SQLite and on PostgreSQL (where the waiting post is locked while it grows).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.alerts.event import AlertEvent
from bot.alerts.pagerduty import parse_pagerduty
from bot.alerts.severity import default_severity_mapping
from bot.clock import SystemClock
from bot.incidents.batch import MAX_POST_CHARS
from bot.incidents.service import IncidentService
from bot.settings import FirebellConfig
from bot.store.database import create_engine
from bot.store.migrate import migrate
from bot.store.tables import Job
from tests.samples import pagerduty_event

JOBS = Job.__table__  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'firebell.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    await migrate(engine)
    yield engine
    await engine.dispose()


def service() -> IncidentService:
    return IncidentService(FirebellConfig(), default_severity_mapping(), SystemClock())


def events(incident_id: str = "P1", notes: int = 3) -> list[AlertEvent]:
    bodies = [pagerduty_event(incident_id=incident_id, title=f"Outage {incident_id}")]
    bodies.append(
        pagerduty_event("incident.acknowledged", incident_id=incident_id, occurred_at="2024-05-20T14:01:00Z")
    )
    for n in range(notes):
        bodies.append(
            pagerduty_event(
                "incident.annotated",
                incident_id=incident_id,
                note=f"note {n}",
                occurred_at=f"2024-05-20T14:02:{n:02}Z",
            )
        )
    bodies.append(pagerduty_event("incident.priority_updated", incident_id=incident_id, priority="P3"))
    return [event for body in bodies for event in parse_pagerduty(json.dumps(body).encode(), None)]


async def apply_in_batches(engine: AsyncEngine, batches: Sequence[Sequence[AlertEvent]]) -> None:
    incidents = service()
    for batch in batches:
        async with engine.begin() as connection:
            await incidents.apply_batch(connection, batch)


async def rows(engine: AsyncEngine, query: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(query))]


async def post_texts(engine: AsyncEngine) -> list[str]:
    found = await rows(engine, "select payload from jobs where kind = 'post' order by id")
    return [json.loads(payload)["text"] for (payload,) in found]


async def test_one_batch_leaves_what_one_event_at_a_time_leaves(engine: AsyncEngine, tmp_path: Path) -> None:
    stream = events("P1") + events("P2")
    await apply_in_batches(engine, [stream])
    reference = create_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    await migrate(reference)
    await apply_in_batches(reference, [[event] for event in stream])
    incident_columns = (
        "select id, title, status, severity, alert_count, acknowledged_at is not null from incidents"
    )
    timeline = "select incident_id, kind, actor, text from timeline order by id"
    refs = "select source, ref, incident_id, resolved from incident_refs order by ref"
    for query in (incident_columns + " order by id", timeline, refs):
        assert await rows(engine, query) == await rows(reference, query)
    # Same lines, fewer messages: each incident's lines in one post.
    reference_lines = [line for post in await post_texts(reference) for line in post.splitlines()]
    assert [line for post in await post_texts(engine) for line in post.splitlines()] == reference_lines
    assert len(await post_texts(engine)) == 2
    # One card refresh per incident is enough: it renders the latest state.
    assert await rows(
        engine, "select lane, count(*) from jobs where kind = 'sync_card' group by lane order by lane"
    ) == [
        ("incident:1", 1),
        ("incident:2", 1),
    ]
    await reference.dispose()


async def test_lines_join_the_post_still_waiting_in_the_lane(engine: AsyncEngine) -> None:
    stream = events("P1", notes=4)
    await apply_in_batches(engine, [stream[:3], stream[3:5], stream[5:]])
    # open_channel first, then one post that grew with every batch.
    kinds = await rows(engine, "select kind from jobs where lane = 'incident:1' order by id")
    assert kinds == [("open_channel",), ("post",), ("sync_card",)]
    (post,) = await post_texts(engine)
    assert [line.split(" in PagerDuty")[0] for line in post.splitlines()] == [
        ":eyes: Acknowledged",
        ":memo: Note",
        ":memo: Note",
        ":memo: Note",
        ":memo: Note",
        ":bar_chart: Severity changed to SEV3",
    ]


async def test_a_post_a_worker_has_started_is_left_alone(engine: AsyncEngine) -> None:
    stream = events("P1", notes=2)
    await apply_in_batches(engine, [stream[:3]])
    (started,) = await post_texts(engine)
    async with engine.begin() as connection:
        await connection.execute(
            update(JOBS).where(JOBS.c.kind == "post").values(locked_by="worker-1", attempts=1)
        )
    await apply_in_batches(engine, [stream[3:]])
    posts = await post_texts(engine)
    assert posts[0] == started
    assert len(posts) == 2 and posts[1].startswith(":memo: Note in PagerDuty by Earline Greenholt: note 1")


async def test_a_post_stops_growing_at_the_size_limit(engine: AsyncEngine) -> None:
    long_note = "x" * 900
    bodies = [pagerduty_event(incident_id="P9")] + [
        pagerduty_event(
            "incident.annotated",
            incident_id="P9",
            note=f"{n} {long_note}",
            occurred_at=f"2024-05-20T14:03:{n:02}Z",
        )
        for n in range(10)
    ]
    stream = [event for body in bodies for event in parse_pagerduty(json.dumps(body).encode(), None)]
    await apply_in_batches(engine, [stream[:4], stream[4:]])
    posts = await post_texts(engine)
    assert all(len(post) <= MAX_POST_CHARS for post in posts)
    lines = [line for post in posts for line in post.splitlines()]
    assert [line.split("Greenholt: ", 1)[1].split(" ", 1)[0] for line in lines] == [str(n) for n in range(10)]
    assert len(posts) == 4
