"""``/incident diag http|logs`` end to end: guarded probes, configured logs, the timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SLACK_SIGNING_SECRET, send_pagerduty
from tests.diagnostics.servers import ProbeTarget
from tests.fakes import FakePagerDuty, FakeSlack
from tests.harness import FirebellServer, SlackClient
from tests.logs.logdata import SPIKE_PATH, combined, write
from tests.samples import pagerduty_event

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]
CHANNEL = "inc-1-checkout-api-error-rate-above-5"


class Room:
    """A firebell with one incident channel, opened by a PagerDuty trigger."""

    def __init__(self, slack: FakeSlack, firebell: FirebellServer, channel: str, user: str) -> None:
        self.slack = slack
        self.firebell = firebell
        self.channel = channel
        self.user = user
        self.client = SlackClient(firebell.url, SLACK_SIGNING_SECRET, slack.new_response_url)

    def ask(self, text: str) -> dict[str, Any]:
        answer, url = self.client.command(text, user_id=self.user, channel_id=self.channel)
        assert answer.status_code == 200
        self.slack.wait_for(lambda: len(self.slack.response_posts(url)) >= 1, message=text, timeout=30)
        return self.slack.response_posts(url)[0].body

    def timeline(self) -> list[tuple[str, str]]:
        return [
            (kind, text) for kind, text in self.firebell.sql("select kind, text from timeline order by id")
        ]


@pytest.fixture
def open_room(
    slack: FakeSlack, pagerduty: FakePagerDuty, firebell_env: Env, start_firebell: Start
) -> Callable[..., Room]:
    def open_(
        diagnostics: dict[str, Any] | None = None, log_sources: dict[str, list[str]] | None = None
    ) -> Room:
        user = slack.add_user("alice@acme.test", "Alice")
        pagerduty.add_incident("PGR0VU2")
        config: dict[str, dict[str, Any]] = {"services.checkout": {"pagerduty_service_id": "PSERVICE"}}
        if diagnostics:
            config["diagnostics"] = diagnostics
        if log_sources:
            config["diagnostics.log_sources"] = log_sources
        firebell = start_firebell(firebell_env(config=config))
        send_pagerduty(firebell, pagerduty_event())
        slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None)
        channel = slack.channel_by_name(CHANNEL)
        assert channel is not None
        return Room(slack, firebell, channel.id, user)

    return open_


@pytest.fixture
def target() -> Iterator[ProbeTarget]:
    with ProbeTarget() as server:
        yield server


def test_loopback_is_refused_by_default(open_room: Callable[..., Room], target: ProbeTarget) -> None:
    room = open_room()
    answer = room.ask(f"diag http <{target.url}/unavailable>")
    assert answer["response_type"] == "ephemeral"
    text = str(answer["text"])
    assert "Not probed" in text and "loopback" in text and "allow_cidrs" in text
    assert target.requests == []
    assert [kind for kind, _ in room.timeline()] == ["opened"]


def test_allowed_probe_posts_the_verdict_and_records_it(
    open_room: Callable[..., Room], target: ProbeTarget
) -> None:
    room = open_room({"allow_cidrs": ["127.0.0.1/32"]})
    answer = room.ask(f"diag http <{target.url}/unavailable|x> --count 2")
    assert answer["response_type"] == "in_channel"
    assert "answers 503 with Retry-After 120" in str(answer["text"])
    assert "*down*" in str(answer["text"])
    assert "answers 503" in str(answer["blocks"])
    diag = [text for kind, text in room.timeline() if kind == "diag"]
    assert len(diag) == 1
    assert diag[0].startswith(f"diag http {target.url}/unavailable")
    assert "answers 503 with Retry-After 120" in diag[0]


def test_logs_by_configured_name_only(open_room: Callable[..., Room], tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, combined)
    room = open_room(log_sources={"web": [str(log)], "api": [str(tmp_path / "api-*.log")]})

    answer = room.ask("diag logs web")
    assert answer["response_type"] == "in_channel"
    text = str(answer["text"])
    assert "Access log `web`" in text and "5xx spike 12:30" in text and SPIKE_PATH in text
    diag = [text for kind, text in room.timeline() if kind == "diag"]
    assert len(diag) == 1 and diag[0].startswith("diag logs web") and "5xx spike" in diag[0]

    unknown = room.ask("diag logs db")
    assert unknown["response_type"] == "ephemeral"
    assert "`db` is not a configured log source. Configured: `api`, `web`." in str(unknown["text"])

    empty = room.ask("diag logs api")
    assert "has no files right now" in str(empty["text"])

    passwd = room.ask("diag logs /etc/passwd")
    assert passwd["response_type"] == "ephemeral"
    assert "`/etc/passwd` is not a configured log source" in str(passwd["text"])
    assert "root:" not in str(passwd)
    assert len([kind for kind, _ in room.timeline() if kind == "diag"]) == 1
