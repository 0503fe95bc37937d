"""The Statuspage mirror against a real HTTP fake of Statuspage's REST API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bot.errors import IntegrationError
from bot.notices.config import StatuspageConfig
from bot.notices.model import Impact, NoticeStatus, Outgoing
from bot.notices.sender import DeliveryFailed, DeliveryUncertain, Sender
from bot.notices.statuspage import (
    NoticeFacts,
    RequestLimiter,
    StatuspageClient,
    StatuspageSender,
    map_notice,
)
from tests.notices.statuspage_fake import FakeStatuspage

PAGE = "pg7k2x"
API_KEY = "sp-key-0123456789abcdef"
KEY_SECRET = "STATUSPAGE_API_KEY"
COMPONENT_IDS = {"api": "cmp-api", "web": "cmp-web", "billing": "cmp-billing"}
INCIDENT = 42


class ManualTimer:
    """A monotonic clock and ``sleep`` for the limiter: time moves only when it sleeps.

    With ``hold=True`` a sleep waits until the test calls ``release``, so a
    test can look at the world while the limiter is holding a request back.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.now = 1000.0
        self.delays: list[float] = []
        self.sleeping = asyncio.Event()
        self._gate = asyncio.Event()
        if not hold:
            self._gate.set()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.sleeping.set()
        await self._gate.wait()
        self.now += seconds

    def release(self) -> None:
        self._gate.set()


@dataclass
class Db:
    """Stands in for the tables behind ``facts``, ``lookup`` and ``remember``."""

    facts: dict[int, NoticeFacts] = field(default_factory=dict)
    pairs: dict[int, str] = field(default_factory=dict)

    async def get_facts(self, notice_id: int) -> NoticeFacts:
        return self.facts[notice_id]

    async def lookup(self, incident_id: int) -> str | None:
        return self.pairs.get(incident_id)

    async def remember(self, incident_id: int, statuspage_id: str) -> None:
        self.pairs[incident_id] = statuspage_id


class Commits:
    """A ``commit`` that notes how many requests Statuspage had seen when it ran."""

    def __init__(self, fake: FakeStatuspage) -> None:
        self._fake = fake
        self.seen_at: list[int] = []

    async def __call__(self) -> None:
        self.seen_at.append(len(self._fake.requests))


@dataclass
class Rig:
    fake: FakeStatuspage
    db: Db
    timer: ManualTimer
    sender: StatuspageSender
    client: StatuspageClient

    def notice(
        self,
        notice_id: int,
        status: NoticeStatus,
        *,
        impact: Impact = Impact.MAJOR,
        components: tuple[str, ...] = ("api", "web"),
        text: str = "We are looking into elevated API errors.",
        subject: str = "Elevated API errors",
        target: str = PAGE,
    ) -> Outgoing:
        self.db.facts[notice_id] = NoticeFacts(INCIDENT, status, impact, components)
        return Outgoing(
            delivery_id=1000 + notice_id,
            notice_id=notice_id,
            channel="statuspage",
            segment="everyone",
            locale="en",
            target=target,
            subject=subject,
            text=text,
        )

    async def send(self, message: Outgoing) -> Commits:
        commits = Commits(self.fake)
        await self.sender.send(message, commits)
        return commits


@pytest.fixture
async def fake() -> AsyncIterator[FakeStatuspage]:
    components = {cid: "operational" for cid in COMPONENT_IDS.values()}
    async with FakeStatuspage(page_id=PAGE, api_key=API_KEY, components=components) as server:
        yield server


@pytest.fixture
async def make_rig(fake: FakeStatuspage) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(*, api_key: str = API_KEY, hold: bool = False, interval: float = 1.0) -> Rig:
        config = StatuspageConfig(
            page_id=PAGE, api_key_secret=KEY_SECRET, api_url=fake.api_url, components=COMPONENT_IDS
        )
        timer = ManualTimer(hold=hold)
        limiter = RequestLimiter(interval, now=timer.monotonic, sleep=timer.sleep)
        http = httpx.AsyncClient(trust_env=False, timeout=10)
        client = StatuspageClient(config, api_key, http, limiter=limiter)
        db = Db()
        sender = StatuspageSender(client, facts=db.get_facts, lookup=db.lookup, remember=db.remember)
        rig = Rig(fake, db, timer, sender, client)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.sender.close()


def test_sender_satisfies_the_protocol() -> None:
    sender_type: type[Sender] = StatuspageSender
    assert sender_type.channel == "statuspage"


async def test_first_notice_creates_the_incident(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    rig = make_rig()

    commits = await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))

    [create] = fake.requests
    assert (create.method, create.path) == ("POST", f"/v1/pages/{PAGE}/incidents")
    assert create.headers["authorization"] == f"OAuth {API_KEY}"
    assert create.json() == {
        "incident": {
            "name": "Elevated API errors",
            "status": "investigating",
            "impact_override": "major",
            "body": "We are looking into elevated API errors.",
            "component_ids": ["cmp-api", "cmp-web"],
            "components": {"cmp-api": "partial_outage", "cmp-web": "partial_outage"},
            "deliver_notifications": True,
        }
    }
    [incident] = fake.incidents.values()
    assert (incident.name, incident.status, incident.impact) == (
        "Elevated API errors",
        "investigating",
        "major",
    )
    assert incident.component_ids == ["cmp-api", "cmp-web"]
    assert fake.components == {
        "cmp-api": "partial_outage",
        "cmp-web": "partial_outage",
        "cmp-billing": "operational",
    }
    assert rig.db.pairs == {INCIDENT: incident.id}
    assert commits.seen_at == [0]


async def test_later_notice_updates_the_same_incident(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig()
    await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))
    [incident_id] = fake.incidents

    commits = await rig.send(
        rig.notice(2, NoticeStatus.IDENTIFIED, impact=Impact.CRITICAL, text="A bad deploy; rolling back.")
    )

    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", f"/v1/pages/{PAGE}/incidents"),
        ("PATCH", f"/v1/pages/{PAGE}/incidents/{incident_id}"),
    ]
    assert fake.requests[1].json()["incident"] == {
        "name": "Elevated API errors",
        "status": "identified",
        "impact_override": "critical",
        "body": "A bad deploy; rolling back.",
        "component_ids": ["cmp-api", "cmp-web"],
        "components": {"cmp-api": "major_outage", "cmp-web": "major_outage"},
        "deliver_notifications": True,
    }
    incident = fake.incidents[incident_id]
    assert len(fake.incidents) == 1
    assert incident.status == "identified"
    assert [u["body"] for u in incident.updates] == [
        "We are looking into elevated API errors.",
        "A bad deploy; rolling back.",
    ]
    assert commits.seen_at == [1]


async def test_the_pairing_outlives_the_sender(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    """A new process (new sender, same database) updates the incident the old one created."""
    first = make_rig()
    await first.send(first.notice(1, NoticeStatus.INVESTIGATING))
    second = make_rig()
    second.db.pairs = dict(first.db.pairs)

    await second.send(second.notice(2, NoticeStatus.MONITORING))

    assert [r.method for r in fake.requests] == ["POST", "PATCH"]
    assert len(fake.incidents) == 1


async def test_resolved_sets_components_operational(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig()
    await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING, impact=Impact.CRITICAL))
    assert fake.components["cmp-api"] == "major_outage"

    await rig.send(rig.notice(2, NoticeStatus.RESOLVED, impact=Impact.CRITICAL, text="All clear."))

    assert fake.requests[-1].json()["incident"]["components"] == {
        "cmp-api": "operational",
        "cmp-web": "operational",
    }
    assert set(fake.components.values()) == {"operational"}
    [incident] = fake.incidents.values()
    assert incident.status == "resolved"


async def test_unknown_components_are_skipped_and_named(
    make_rig: Callable[..., Rig], fake: FakeStatuspage, caplog: pytest.LogCaptureFixture
) -> None:
    rig = make_rig()
    message = rig.notice(
        1, NoticeStatus.INVESTIGATING, impact=Impact.MINOR, components=("api", "search", "db")
    )

    outcome = await rig.sender.deliver(message, Commits(fake))

    body = fake.requests[0].json()["incident"]
    assert body["component_ids"] == ["cmp-api"]
    assert body["components"] == {"cmp-api": "degraded_performance"}
    assert outcome.created
    [warning] = outcome.warnings
    assert "search, db" in warning

    with caplog.at_level(logging.WARNING, logger="bot.notices.statuspage"):
        await rig.send(rig.notice(2, NoticeStatus.MONITORING, components=("search",)))
    assert any("search" in r.getMessage() for r in caplog.records)
    # No mapped component: the update leaves the affected components alone.
    assert "component_ids" not in fake.requests[1].json()["incident"]


async def test_back_to_back_notices_wait_for_the_limiter(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig(hold=True)
    await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))
    assert rig.timer.delays == []

    commits = Commits(fake)
    second = asyncio.create_task(rig.sender.send(rig.notice(2, NoticeStatus.IDENTIFIED), commits))
    await rig.timer.sleeping.wait()

    # Held back: Statuspage has seen only the first request, and nothing is committed yet.
    assert rig.timer.delays == [1.0]
    assert [r.method for r in fake.requests] == ["POST"]
    assert commits.seen_at == []

    rig.timer.release()
    await second

    assert [r.method for r in fake.requests] == ["POST", "PATCH"]
    assert fake.requests[0].seq < fake.requests[1].seq
    assert commits.seen_at == [1]


async def test_notices_of_one_incident_sent_at_once_create_one_incident(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig()
    first = rig.notice(1, NoticeStatus.INVESTIGATING)
    second = rig.notice(2, NoticeStatus.IDENTIFIED)

    await asyncio.gather(rig.send(first), rig.send(second))

    assert [r.method for r in fake.requests] == ["POST", "PATCH"]
    assert len(fake.incidents) == 1


@pytest.mark.parametrize("status", [429, 420])
async def test_rate_limited_is_retryable_with_retry_after(
    make_rig: Callable[..., Rig], fake: FakeStatuspage, status: int
) -> None:
    rig = make_rig()
    fake.fail_next(status, retry_after="30")

    with pytest.raises(IntegrationError) as caught:
        await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))

    assert caught.value.retryable
    assert caught.value.retry_after == 30
    assert rig.db.pairs == {}
    assert fake.incidents == {}

    # The next request on this key waits out the Retry-After first.
    await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))
    assert rig.timer.delays == [30]
    assert len(fake.incidents) == 1


async def test_server_error_is_retryable(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    rig = make_rig()
    fake.fail_next(500)

    with pytest.raises(IntegrationError) as caught:
        await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))

    assert caught.value.retryable
    assert not isinstance(caught.value, DeliveryFailed)


def _sender_over(transport: httpx.MockTransport) -> tuple[StatuspageSender, Outgoing]:
    config = StatuspageConfig(page_id=PAGE, api_key_secret=KEY_SECRET, api_url="http://statuspage.invalid/v1")
    client = StatuspageClient(
        config, API_KEY, httpx.AsyncClient(transport=transport), limiter=RequestLimiter(0)
    )
    db = Db()
    db.facts[1] = NoticeFacts(INCIDENT, NoticeStatus.INVESTIGATING, Impact.MINOR)
    sender = StatuspageSender(client, facts=db.get_facts, lookup=db.lookup, remember=db.remember)
    return sender, Outgoing(1, 1, "statuspage", "everyone", "en", PAGE, "Outage", "Looking.")


async def test_unreachable_statuspage_is_retryable_and_not_raw_httpx() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sender, message = _sender_over(httpx.MockTransport(refuse))
    try:
        with pytest.raises(IntegrationError) as caught:
            await sender.send(message, _no_commit)
    finally:
        await sender.close()
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert API_KEY not in str(caught.value)


async def test_lost_answer_after_sending_is_uncertain_not_retried() -> None:
    """A read timeout after the request left may hide a created incident: count it as sent."""

    def hang_up(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    sender, message = _sender_over(httpx.MockTransport(hang_up))
    try:
        with pytest.raises(DeliveryUncertain) as caught:
            await sender.send(message, _no_commit)
    finally:
        await sender.close()
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert API_KEY not in str(caught.value)


async def _no_commit() -> None:
    return None


async def test_bad_key_is_permanent_and_never_shows_the_key(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    wrong_key = "sp-key-wrong-ffffffff"
    rig = make_rig(api_key=wrong_key)

    with pytest.raises(DeliveryFailed) as caught:
        await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))

    assert fake.requests[0].headers["authorization"] == f"OAuth {wrong_key}"
    assert caught.value.permanent
    assert KEY_SECRET in caught.value.reason
    assert wrong_key not in caught.value.reason
    assert wrong_key not in str(caught.value)
    assert "401" in caught.value.reason


async def test_forbidden_is_permanent(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    rig = make_rig()
    fake.fail_next(403, error="insufficient permissions")

    with pytest.raises(DeliveryFailed) as caught:
        await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))

    assert caught.value.permanent
    assert KEY_SECRET in caught.value.reason
    assert API_KEY not in caught.value.reason


async def test_invalid_body_is_permanent_with_statuspage_reason(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig()
    fake.fail_next(422, error="Name is too long")

    with pytest.raises(DeliveryFailed) as caught:
        await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))

    assert caught.value.permanent
    assert "Name is too long" in caught.value.reason


async def test_deleted_incident_is_recreated_once(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    rig = make_rig()
    await rig.send(rig.notice(1, NoticeStatus.INVESTIGATING))
    [old_id] = fake.incidents
    fake.delete_incident(old_id)

    commits = await rig.send(rig.notice(2, NoticeStatus.IDENTIFIED, text="Found it."))

    assert [(r.method, r.path) for r in fake.requests[1:]] == [
        ("PATCH", f"/v1/pages/{PAGE}/incidents/{old_id}"),
        ("POST", f"/v1/pages/{PAGE}/incidents"),
    ]
    [new] = fake.incidents.values()
    assert new.id != old_id
    assert new.status == "identified"
    assert [u["body"] for u in new.updates] == ["Found it."]
    assert rig.db.pairs == {INCIDENT: new.id}
    # One commit, before the PATCH (the first changing request), none for the re-create.
    assert commits.seen_at == [1]


async def test_recreate_happens_only_once(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    """A 404 for the re-create too means the page itself is gone: a permanent failure, no loop."""
    rig = make_rig()
    rig.db.pairs[INCIDENT] = "sp-gone"
    fake.fail_next(404)
    fake.fail_next(404, error="page not found")

    with pytest.raises(DeliveryFailed) as caught:
        await rig.send(rig.notice(1, NoticeStatus.IDENTIFIED))

    assert caught.value.permanent
    assert [r.method for r in fake.requests] == ["PATCH", "POST"]


async def test_commit_once_before_the_first_change_even_when_it_fails(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig()
    fake.fail_next(500)
    commits = Commits(fake)

    with pytest.raises(IntegrationError):
        await rig.sender.send(rig.notice(1, NoticeStatus.INVESTIGATING), commits)

    assert commits.seen_at == [0]
    assert len(fake.requests) == 1


async def test_delivery_for_another_page_is_refused_before_any_request(
    make_rig: Callable[..., Rig], fake: FakeStatuspage
) -> None:
    rig = make_rig()
    commits = Commits(fake)

    with pytest.raises(DeliveryFailed) as caught:
        await rig.sender.send(rig.notice(1, NoticeStatus.INVESTIGATING, target="other-page"), commits)

    assert caught.value.permanent
    assert fake.requests == []
    assert commits.seen_at == []


async def test_set_component_status(make_rig: Callable[..., Rig], fake: FakeStatuspage) -> None:
    rig = make_rig()

    await rig.client.set_component_status("cmp-billing", "under_maintenance")

    assert fake.components["cmp-billing"] == "under_maintenance"
    assert fake.requests[0].json() == {"component": {"status": "under_maintenance"}}


# ----------------------------------------------------------------------------- pure mapping


def _facts(status: NoticeStatus, impact: Impact, components: tuple[str, ...] = ("api",)) -> NoticeFacts:
    return NoticeFacts(INCIDENT, status, impact, components)


@pytest.mark.parametrize(
    ("status", "impact", "expected"),
    [
        (NoticeStatus.INVESTIGATING, Impact.MINOR, {"cmp-api": "degraded_performance"}),
        (NoticeStatus.IDENTIFIED, Impact.MAJOR, {"cmp-api": "partial_outage"}),
        (NoticeStatus.MONITORING, Impact.CRITICAL, {"cmp-api": "major_outage"}),
        (NoticeStatus.RESOLVED, Impact.CRITICAL, {"cmp-api": "operational"}),
        (NoticeStatus.INVESTIGATING, Impact.NONE, {}),
    ],
)
def test_component_status_follows_impact_and_resolution(
    status: NoticeStatus, impact: Impact, expected: dict[str, Any]
) -> None:
    mapped = map_notice(_facts(status, impact), name="x", body="y", component_ids=COMPONENT_IDS)
    assert dict(mapped.fields.components) == expected
    assert mapped.fields.component_ids == ("cmp-api",)
    assert mapped.fields.status is status
    assert mapped.fields.impact_override is impact


def test_long_names_are_cut_to_statuspage_limit() -> None:
    mapped = map_notice(
        _facts(NoticeStatus.INVESTIGATING, Impact.MINOR), name="x" * 400, body="", component_ids={}
    )
    assert len(mapped.fields.name) == 255
    assert mapped.fields.name.endswith("…")


def test_duplicate_components_are_sent_once() -> None:
    mapped = map_notice(
        _facts(NoticeStatus.INVESTIGATING, Impact.MINOR, ("api", "api", "nope", "nope")),
        name="n",
        body="b",
        component_ids=COMPONENT_IDS,
    )
    assert mapped.fields.component_ids == ("cmp-api",)
    assert mapped.warnings == (
        "Statuspage: skipped components with no Statuspage id in [notices.statuspage] components: nope",
    )
