"""Status-update reminders, digests and nudges, driven by a hand-turned clock.

firebell runs for real (uvicorn, SQLite, the job worker, the APScheduler tick
every 0.1 s of real time); only its ``Clock`` is a ``FakeClock``, so fifteen
minutes pass in one call and "nothing more happens" can be checked by
letting several real ticks go by.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from bot.errors import UserError
from bot.incidents.card import ACTION_ACKNOWLEDGE, ACTION_ESCALATE, ACTION_POST_UPDATE, ACTION_SNOOZE
from bot.store.tables import IncidentRole
from tests.clock import FakeClock
from tests.conftest import SLACK_SIGNING_SECRET, send_pagerduty
from tests.fakes import FakeSlack
from tests.fakes.slack import SlackChannel, SlackMessage
from tests.harness import FirebellServer, SlackClient
from tests.samples import pagerduty_event

Env = Callable[..., dict[str, str]]
Start = Callable[[dict[str, str]], FirebellServer]

TICK = 0.1
# Long enough for several ticks, and for whatever they queue to be posted.
A_FEW_TICKS = 6 * TICK
REMINDER = "Status update due"
NUDGE = "Nobody has acknowledged"
DIGEST = "Automatic status digest"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start(clock: FakeClock) -> Iterator[Start]:
    """Start firebell servers on the test's clock; all stop at the end."""
    started: list[FirebellServer] = []

    def start(env: dict[str, str]) -> FirebellServer:
        server = FirebellServer(env, clock).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


def env_with(firebell_env: Env, **updates: Any) -> dict[str, str]:
    """A fast tick; nudges off unless a test asks for them."""
    values: dict[str, Any] = {"tick_seconds": TICK, "unacknowledged_nudge_minutes": 0}
    values.update(updates)
    return firebell_env(config={"updates": values})


def settle(server: FirebellServer) -> None:
    """Wait until every delivery is applied and every queued job has run.

    Needed before turning the clock: a job still running when its lease
    (in fake time) expires would be claimed a second time.
    """
    server.wait_until(
        lambda: (
            server.sql(
                "select (select count(*) from jobs where done_at is null)"
                " + (select count(*) from deliveries where processed_at is null)"
            )[0][0]
            == 0
        ),
        what="all deliveries applied and all jobs done",
    )


def advance(clock: FakeClock, server: FirebellServer, **delta: float) -> None:
    """Turn the clock, let a few real ticks see it, and wait for their jobs."""
    clock.advance(**delta)
    time.sleep(A_FEW_TICKS)
    settle(server)


def open_incident(slack: FakeSlack, server: FirebellServer, name: str, **event: Any) -> SlackChannel:
    assert send_pagerduty(server, pagerduty_event(**event)).status_code == 202
    slack.wait_for(lambda: slack.channel_by_name(name) is not None, message=f"channel {name}")
    channel = slack.channel_by_name(name)
    assert channel is not None
    slack.wait_for(lambda: any(m.blocks for m in slack.messages(channel.id)), message="incident card")
    settle(server)
    return channel


def said(slack: FakeSlack, channel_id: str, what: str) -> list[SlackMessage]:
    return [m for m in slack.messages(channel_id) if what in m.text]


def buttons(message: SlackMessage) -> dict[str, dict[str, Any]]:
    assert message.blocks is not None
    return {
        element["action_id"]: element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    }


def timeline(server: FirebellServer, kind: str, incident_id: int = 1) -> list[Any]:
    return server.sql(
        "select actor, text from timeline where incident_id = :id and kind = :kind order by id",
        id=incident_id,
        kind=kind,
    )


FIRST = "inc-1-checkout-api-error-rate-above-5"


def test_a_sev1_incident_is_reminded_every_cadence_and_only_once_each_time(
    slack: FakeSlack, firebell_env: Env, start: Start, clock: FakeClock
) -> None:
    server = start(env_with(firebell_env))
    channel = open_incident(slack, server, FIRST)

    advance(clock, server, minutes=14, seconds=59)
    assert said(slack, channel.id, REMINDER) == []

    advance(clock, server, seconds=1)
    slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 1, message="first reminder")
    time.sleep(A_FEW_TICKS)
    settle(server)
    [reminder] = said(slack, channel.id, REMINDER)
    assert reminder.text.startswith(
        "Status update due for #1 (SEV1, investigating for 15 min); no update posted yet."
    )
    # Nobody is commander: the channel is told, but nobody is broadcast to.
    assert "commander" in reminder.text
    assert "<!" not in str(reminder.blocks) and "<!" not in reminder.text
    actions = buttons(reminder)
    assert actions[ACTION_POST_UPDATE]["value"] == "1"
    assert actions[ACTION_SNOOZE]["value"] == "1"
    assert actions[ACTION_SNOOZE]["text"]["text"] == "Snooze 10 min"
    assert len(timeline(server, "reminder")) == 1
    [(next_due,)] = server.sql("select next_update_at from incidents where id = 1")
    assert next_due is not None

    # Nobody posted an update: it comes again one cadence later, once.
    advance(clock, server, minutes=14)
    assert len(said(slack, channel.id, REMINDER)) == 1
    advance(clock, server, minutes=1)
    slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 2, message="second reminder")
    time.sleep(A_FEW_TICKS)
    settle(server)
    reminders = said(slack, channel.id, REMINDER)
    assert len(reminders) == 2
    assert "investigating for 30 min" in reminders[1].text
    assert len(timeline(server, "reminder")) == 2


def test_sev4_and_resolved_incidents_get_no_reminders(
    slack: FakeSlack, firebell_env: Env, start: Start, clock: FakeClock
) -> None:
    server = start(env_with(firebell_env))
    low = open_incident(
        slack, server, "inc-1-disk-80-percent", incident_id="PLOW", title="Disk 80 percent", priority="P4"
    )
    done = open_incident(slack, server, "inc-2-search-down", incident_id="PDONE", title="Search down")
    send_pagerduty(
        server, pagerduty_event("incident.resolved", incident_id="PDONE", occurred_at="2024-05-20T14:05:00Z")
    )
    slack.wait_for(lambda: bool(said(slack, done.id, "Resolved in PagerDuty")), message="resolved")
    settle(server)
    assert server.sql("select id, severity, next_update_at from incidents order by id") == [
        (1, 4, None),
        (2, 1, None),
    ]

    for _ in range(4):
        advance(clock, server, minutes=15)
    assert said(slack, low.id, REMINDER) == []
    assert said(slack, done.id, REMINDER) == []
    assert server.sql("select count(*) from timeline where kind = 'reminder'") == [(0,)]


def test_the_reminder_mentions_the_commander(
    slack: FakeSlack, firebell_env: Env, start: Start, clock: FakeClock
) -> None:
    alice = slack.add_user("alice@acme.test", "Alice")
    server = start(env_with(firebell_env))
    channel = open_incident(slack, server, FIRST)
    firebell = server.firebell
    assert firebell is not None

    async def make_alice_commander() -> None:
        async with firebell.engine.begin() as connection:
            await connection.execute(
                insert(IncidentRole.__table__).values(  # type: ignore[attr-defined]
                    incident_id=1, role="commander", user_id=alice, assigned_at=clock.now()
                )
            )

    server.run(make_alice_commander)
    advance(clock, server, minutes=15)
    slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 1, message="reminder")
    [reminder] = said(slack, channel.id, REMINDER)
    assert reminder.text.startswith(f"<@{alice}> Status update due for #1 (SEV1, investigating for 15 min)")
    assert timeline(server, "reminder") == [(None, "Reminded the commander that a status update is due")]


def test_snooze_postpones_the_reminder(
    slack: FakeSlack, firebell_env: Env, start: Start, clock: FakeClock
) -> None:
    server = start(env_with(firebell_env))
    channel = open_incident(slack, server, FIRST)
    firebell = server.firebell
    assert firebell is not None

    advance(clock, server, minutes=10)
    # The reminder's Snooze button, clicked in Slack.
    client = SlackClient(server.url, SLACK_SIGNING_SECRET, slack.new_response_url)
    assert (
        client.click(
            ACTION_SNOOZE, "1", user_id="U0ALICE", channel_id=channel.id, user_name="alice"
        ).status_code
        == 200
    )
    slack.wait_for(lambda: any("Snoozed" in str(p.body.get("text")) for p in slack.response_posts()))
    assert timeline(server, "snooze") == [("alice", "Status update reminder snoozed for 10 min by alice")]
    due = str(server.sql("select next_update_at from incidents where id = 1")[0][0])
    assert due == f"{(clock.now() + timedelta(minutes=10)).replace(tzinfo=None)}"

    advance(clock, server, minutes=5)  # when it was due before the snooze
    assert said(slack, channel.id, REMINDER) == []
    advance(clock, server, minutes=4, seconds=59)
    assert said(slack, channel.id, REMINDER) == []
    advance(clock, server, seconds=1)
    slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 1, message="reminder after snooze")

    with pytest.raises(UserError, match="does not exist"):
        server.run(lambda: firebell.reminders.snooze(99, "alice"))
    send_pagerduty(server, pagerduty_event("incident.resolved", occurred_at="2024-05-20T14:05:00Z"))
    settle(server)
    with pytest.raises(UserError, match="resolved"):
        server.run(lambda: firebell.reminders.snooze(1, "alice"))


def test_an_unacknowledged_incident_is_nudged_once(
    slack: FakeSlack, firebell_env: Env, start: Start, clock: FakeClock
) -> None:
    server = start(env_with(firebell_env, unacknowledged_nudge_minutes=10))
    ignored = open_incident(slack, server, FIRST)
    handled = open_incident(slack, server, "inc-2-search-down", incident_id="PSEARCH", title="Search down")
    send_pagerduty(
        server,
        pagerduty_event("incident.acknowledged", incident_id="PSEARCH", occurred_at="2024-05-20T14:01:00Z"),
    )
    slack.wait_for(lambda: bool(said(slack, handled.id, "Acknowledged in PagerDuty")), message="ack")
    settle(server)

    advance(clock, server, minutes=9, seconds=59)
    assert said(slack, ignored.id, NUDGE) == []
    advance(clock, server, seconds=1)
    slack.wait_for(lambda: len(said(slack, ignored.id, NUDGE)) == 1, message="nudge")
    [nudge] = said(slack, ignored.id, NUDGE)
    assert nudge.text == "Nobody has acknowledged #1 after 10 minutes."
    actions = buttons(nudge)
    assert actions[ACTION_ESCALATE]["value"] == "1"
    assert actions[ACTION_ACKNOWLEDGE]["value"] == "1"

    advance(clock, server, minutes=10)
    assert len(said(slack, ignored.id, NUDGE)) == 1
    assert said(slack, handled.id, NUDGE) == []
    assert len(timeline(server, "nudge", 1)) == 1
    assert timeline(server, "nudge", 2) == []


def test_digest_mode_posts_what_changed_instead_of_a_reminder(
    slack: FakeSlack, firebell_env: Env, start: Start, clock: FakeClock
) -> None:
    server = start(env_with(firebell_env, digest=True))
    channel = open_incident(slack, server, FIRST)
    send_pagerduty(server, pagerduty_event("incident.acknowledged", occurred_at="2024-05-20T14:01:00Z"))
    send_pagerduty(
        server,
        pagerduty_event(
            "incident.annotated", note="Rolled back <deploy> 4711", occurred_at="2024-05-20T14:02:00Z"
        ),
    )
    slack.wait_for(lambda: bool(said(slack, channel.id, "Rolled back")), message="note posted")
    settle(server)

    advance(clock, server, minutes=15)
    slack.wait_for(lambda: len(said(slack, channel.id, DIGEST)) == 1, message="digest")
    [digest] = said(slack, channel.id, DIGEST)
    body = str(digest.blocks)
    assert "SEV1 · Acknowledged · Investigating · open for 15 min" in digest.text
    assert "Changes since the incident opened" in body
    assert "Acknowledged in PagerDuty by Earline Greenholt" in body
    assert "Rolled back &lt;deploy&gt; 4711" in body  # escaped, not a forged link
    assert said(slack, channel.id, REMINDER) == []
    assert len(timeline(server, "digest")) == 1

    send_pagerduty(
        server,
        pagerduty_event(
            "incident.annotated", note="Scaled out the API pool", occurred_at="2024-05-20T14:20:00Z"
        ),
    )
    settle(server)
    advance(clock, server, minutes=15)
    slack.wait_for(lambda: len(said(slack, channel.id, DIGEST)) == 2, message="second digest")
    second = str(said(slack, channel.id, DIGEST)[1].blocks)
    assert "Changes since the last digest" in second
    assert "Scaled out the API pool" in second
    assert "Rolled back" not in second and "Acknowledged in PagerDuty" not in second


def test_a_restart_neither_loses_nor_repeats_a_due_reminder(
    slack: FakeSlack, firebell_env: Env, clock: FakeClock
) -> None:
    env = env_with(firebell_env)
    first = FirebellServer(env, clock).start()
    try:
        channel = open_incident(slack, first, FIRST)
        advance(clock, first, minutes=15)
        slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 1, message="first reminder")
        settle(first)
    finally:
        first.stop()

    # Due while nothing runs; then a firebell that cannot reach Slack claims
    # it: the job waits in the database, and later ticks do not add another.
    clock.advance(minutes=15)
    # No bot token: no job worker, so queued jobs stay queued.
    no_slack = {name: value for name, value in env.items() if name != "SLACK_BOT_TOKEN"}
    without_slack = FirebellServer(no_slack, clock).start()
    try:
        without_slack.wait_until(
            lambda: (
                without_slack.sql("select count(*) from jobs where kind = 'remind' and done_at is null")
                == [(1,)]
            ),
            what="the due reminder queued",
        )
        time.sleep(A_FEW_TICKS)
        assert without_slack.sql("select count(*) from jobs where kind = 'remind' and done_at is null") == [
            (1,)
        ]
    finally:
        without_slack.stop()
    assert len(said(slack, channel.id, REMINDER)) == 1

    second = FirebellServer(env, clock).start()
    try:
        slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 2, message="the queued reminder")
        time.sleep(A_FEW_TICKS)
        settle(second)
        assert len(said(slack, channel.id, REMINDER)) == 2
    finally:
        second.stop()

    # Starting again changes nothing until the next one is due.
    third = FirebellServer(env, clock).start()
    try:
        advance(clock, third, minutes=14, seconds=59)
        assert len(said(slack, channel.id, REMINDER)) == 2
        advance(clock, third, seconds=1)
        slack.wait_for(lambda: len(said(slack, channel.id, REMINDER)) == 3, message="the next reminder")
        time.sleep(A_FEW_TICKS)
        settle(third)
        assert len(said(slack, channel.id, REMINDER)) == 3
        assert len(timeline(third, "reminder")) == 3
    finally:
        third.stop()
