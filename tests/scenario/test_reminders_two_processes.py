"""Two firebell processes on one PostgreSQL database: every reminder goes out
exactly once.

Processes cannot share a FakeClock, so the end-to-end test runs in real time
with a SEV1 cadence of 3 s and both schedulers ticking every 50 ms, which
makes them race for every reminder that comes due. Such races are won by
timing luck; the second test makes them certain, with many ticks on separate
connection pools started at the same moment.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.incidents.reminders import ReminderService
from bot.settings import FirebellConfig, UpdatesConfig
from bot.store.database import create_engine
from bot.store.migrate import migrate
from bot.store.tables import Incident
from tests.clock import FakeClock
from tests.conftest import send_pagerduty
from tests.fakes import FakeSlack
from tests.harness import FirebellProcess
from tests.samples import pagerduty_event

pytestmark = pytest.mark.postgres

Env = Callable[..., dict[str, str]]
T = TypeVar("T")

CADENCE_SECONDS = 3.0
INCIDENTS = 5
REMINDER = "Status update due"


def on_database(url: str, use: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``use`` with an engine on ``url``, from this (synchronous) test."""

    async def run() -> T:
        engine = create_engine(url)
        try:
            return await use(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def query(url: str, sql: str) -> list[Any]:
    """Rows of ``sql`` on the database both processes used (they are gone by then)."""

    async def fetch(engine: AsyncEngine) -> list[Any]:
        async with engine.connect() as connection:
            return list((await connection.execute(text(sql))).all())

    return on_database(url, fetch)


def reminder_posts(slack: FakeSlack) -> dict[str, list[float]]:
    """Arrival times (monotonic) of reminder posts, per channel id."""
    posts: dict[str, list[float]] = {}
    for call in slack.calls("chat.postMessage"):
        if call.fault is None and REMINDER in str(call.body.get("text", "")):
            posts.setdefault(str(call.body["channel"]), []).append(call.at)
    return posts


def test_two_processes_send_each_reminder_once(
    slack: FakeSlack, firebell_env: Env, postgres_url: str, tmp_path: Path
) -> None:
    env = firebell_env(
        config={
            "updates": {"tick_seconds": 0.05, "unacknowledged_nudge_minutes": 0},
            "updates.cadence_minutes": {"1": CADENCE_SECONDS / 60},
        },
        FIREBELL_DATABASE_URL=postgres_url,
    )
    processes = [
        FirebellProcess(env, cwd=tmp_path, log_file=tmp_path / f"firebell-{n}.log") for n in range(2)
    ]
    try:
        # Migrated up front, so neither process races the other through the
        # migrations. They start one after the other: starting both at once
        # on a busy machine only makes each slower to answer.
        on_database(postgres_url, migrate)
        for process in processes:
            process.start()
        for n in range(INCIDENTS):
            # Deliveries land on either process, as behind a load balancer.
            response = send_pagerduty(
                processes[n % 2].url, pagerduty_event(incident_id=f"P{n}", title=f"Outage {n}")
            )
            assert response.status_code == 202
        slack.wait_for(
            lambda: len([c for c in slack.channels if c.name.startswith("inc-")]) == INCIDENTS, timeout=15
        )
        # Two cadences: both processes get to race for each incident twice.
        slack.wait_for(
            lambda: (
                len(posts := reminder_posts(slack)) == INCIDENTS
                and all(len(times) >= 2 for times in posts.values())
            ),
            timeout=15,
            message="two reminders in every incident channel",
        )
    finally:
        for process in processes:
            process.stop()

    logs = "\n".join(process.log() for process in processes)
    assert "Traceback" not in logs, logs
    channels = {c.id: c.name for c in slack.channels if c.name.startswith("inc-")}
    incident_of_channel = {
        channel: incident for incident, channel in query(postgres_url, "select id, channel_id from incidents")
    }
    opened = dict(query(postgres_url, "select id, opened_at from incidents"))
    recorded: dict[int, list[datetime]] = {}
    for incident, at in query(
        postgres_url, "select incident_id, at from timeline where kind = 'reminder' order by id"
    ):
        recorded.setdefault(incident, []).append(at)
    queued = dict(query(postgres_url, "select lane, count(*) from jobs where kind = 'remind' group by lane"))
    assert query(postgres_url, "select count(*) from jobs where done_at is null or failed") == [(0,)]

    posts = reminder_posts(slack)
    assert set(posts) == set(channels)
    for channel, times in posts.items():
        incident = incident_of_channel[channel]
        described = f"{channels[channel]}: posts at {times}, recorded {recorded.get(incident)}"
        # Every post was one claimed job, and every job posted once.
        assert len(times) == len(recorded[incident]) == queued[f"incident:{incident}"], described
        assert len(times) >= 2, described
        # A duplicate would arrive right after its twin; real ones come a
        # cadence apart (less the jitter of two job runs).
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap > CADENCE_SECONDS * 0.75 for gap in gaps), described
        # The k-th reminder cannot go out before k cadences have passed.
        for k, at in enumerate(recorded[incident], start=1):
            assert at >= opened[incident] + timedelta(seconds=CADENCE_SECONDS * k), described


async def test_concurrent_ticks_on_separate_pools_claim_each_due_incident_once(postgres_url: str) -> None:
    clock = FakeClock()
    config = FirebellConfig(updates=UpdatesConfig(cadence_minutes={"1": 15}, unacknowledged_nudge_minutes=10))
    # Each engine is its own connection pool, as each process would have.
    engines = [create_engine(postgres_url) for _ in range(4)]
    try:
        await migrate(engines[0])
        now = clock.now()
        async with engines[0].begin() as connection:
            for n in range(20):
                await connection.execute(
                    insert(Incident.__table__).values(  # type: ignore[attr-defined]
                        title=f"Outage {n}",
                        service="checkout",
                        severity=1,
                        status="triggered",
                        source="pagerduty",
                        teams="[]",
                        private=False,
                        alert_count=1,
                        opened_at=now - timedelta(minutes=11),
                        updated_at=now,
                        setup_done="",
                        responders="[]",
                        missing_responders="[]",
                        phase="investigating",
                        next_update_at=now,
                    )
                )
        services = [ReminderService(engine, clock, config, lambda: None) for engine in engines]
        for round_ in range(3):
            claimed = await asyncio.gather(*(s.tick() for s in services for _ in range(3)))
            # Round 0: 20 reminders and 20 nudges; later rounds: 20 reminders.
            assert sum(claimed) == (40 if round_ == 0 else 20), claimed
            clock.advance(minutes=15)
        async with engines[0].connect() as connection:
            per_lane = (
                await connection.execute(
                    text("select kind, count(*) from jobs group by lane, kind order by kind")
                )
            ).all()
        assert sorted(set(per_lane)) == [("nudge", 1), ("remind", 3)]
        assert len(per_lane) == 40
    finally:
        for engine in engines:
            await engine.dispose()
