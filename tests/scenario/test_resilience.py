"""Nothing accepted is lost: Slack failing, rate limits, kill -9, no Slack at all."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import send_pagerduty
from tests.fakes import FakeSlack
from tests.harness import FirebellProcess, FirebellServer
from tests.samples import pagerduty_event

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]
CHANNEL = "inc-1-checkout-api-error-rate-above-5"


def cards(slack: FakeSlack, channel_id: str) -> int:
    return sum(1 for m in slack.messages(channel_id) if m.blocks and m.blocks[0].get("type") == "header")


def test_rate_limits_honour_retry_after_and_server_errors_are_retried(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    slack.fail_next("conversations.create", status=429, retry_after=1)
    # More failures than the client retries inline: the job itself backs off.
    slack.fail_next("chat.postMessage", status=503, times=4)
    firebell = start_firebell(firebell_env())
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None, timeout=20)
    creates = slack.calls("conversations.create")
    assert len(creates) == 2 and creates[1].at - creates[0].at >= 0.95
    channel = slack.channel_by_name(CHANNEL)
    assert channel is not None
    slack.wait_for(lambda: cards(slack, channel.id) == 1, timeout=20)
    assert not slack.pending_faults()
    assert len(slack.calls("conversations.create")) == 2  # one channel, never a second
    metrics = httpx.get(f"{firebell.url}/metrics").text
    assert 'method="chat.postMessage"' in metrics.split("firebell_slack_call_errors_total", 1)[1]


def test_name_taken_gets_a_suffix(slack: FakeSlack, firebell_env: Env, start_firebell: Start) -> None:
    slack.add_channel(CHANNEL)
    firebell = start_firebell(firebell_env())
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(f"{CHANNEL}-2") is not None)
    # firebell records the name once Slack has answered: wait for that, not just the channel.
    firebell.wait_until(lambda: firebell.sql("select channel_name from incidents") == [(f"{CHANNEL}-2",)])


def test_kill_9_while_slack_is_down_loses_nothing_and_doubles_nothing(
    slack: FakeSlack, firebell_env: Env, tmp_path: Path
) -> None:
    env = firebell_env()
    slack.fail_next("*", status=503, times=100_000)
    process = FirebellProcess(env, cwd=tmp_path, log_file=tmp_path / "firebell.log").start()
    try:
        for n in range(3):
            response = send_pagerduty(process.url, pagerduty_event(incident_id=f"P{n}", title=f"Outage {n}"))
            assert response.status_code == 202
        slack.wait_for(lambda: len(slack.calls("conversations.create")) >= 3, timeout=20)
        process.kill()
        # One more delivery right after a fresh start, before Slack is back.
        process.start()
        send_pagerduty(process.url, pagerduty_event(incident_id="P3", title="Outage 3"))
        process.kill()

        slack.clear()  # Slack is healthy again.
        process.start()
        slack.wait_for(
            lambda: (
                sorted(c.name for c in slack.channels if c.name.startswith("inc-"))
                == ["inc-1-outage-0", "inc-2-outage-1", "inc-3-outage-2", "inc-4-outage-3"]
            ),
            timeout=30,
        )
        for channel in slack.channels:
            if channel.name.startswith("inc-"):
                slack.wait_for(lambda channel=channel: cards(slack, channel.id) == 1, timeout=20)
        time.sleep(0.5)
        assert len(slack.calls("conversations.create")) == 4
        assert all(cards(slack, c.id) == 1 for c in slack.channels if c.name.startswith("inc-"))
    finally:
        process.stop()


def test_without_slack_alerts_are_kept_until_slack_is_configured(
    slack: FakeSlack, firebell_env: Env, tmp_path: Path, caplog: object
) -> None:
    env = firebell_env(SLACK_BOT_TOKEN="", SLACK_SIGNING_SECRET="")
    log_file = tmp_path / "no-slack.log"
    process = FirebellProcess(env, cwd=tmp_path, log_file=log_file).start()
    try:
        assert send_pagerduty(process.url, pagerduty_event()).status_code == 202
        ready = httpx.get(f"{process.url}/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": "ok", "slack": "not configured: set SLACK_BOT_TOKEN"}
        assert "SLACK_BOT_TOKEN" in process.log() and "accepted and stored" in process.log()
        commands = httpx.post(f"{process.url}/slack/events", content=b"x")
        assert commands.status_code == 503
    finally:
        process.stop()
    assert slack.requests == []

    process = FirebellProcess(firebell_env(), cwd=tmp_path, log_file=log_file).start()
    try:
        slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None, timeout=20)
        ready = httpx.get(f"{process.url}/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
    finally:
        process.stop()
