"""``/incident diag http|logs|timeouts|resources|monitors`` end to end: guarded probes,
configured logs, files and services only, the timeline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SLACK_SIGNING_SECRET, send_pagerduty
from tests.diagnostics.servers import ProbeTarget
from tests.diagnostics.test_resources import FakePrometheus
from tests.diagnostics.test_timeouts import HAPROXY_EDGE, NGINX_APP, at
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

    def ask_badly(self, text: str) -> dict[str, Any]:
        """A usage error: answered in the acknowledgement itself."""
        answer, _ = self.client.command(text, user_id=self.user, channel_id=self.channel)
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

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
    # The chart of status classes over time goes into the channel as a PNG.
    room.slack.wait_for(
        lambda: any(f.filename == "diag-logs-web.png" and f.completed for f in room.slack.files)
    )
    chart = next(f for f in room.slack.files if f.filename == "diag-logs-web.png")
    assert chart.content is not None and chart.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert room.channel in chart.channels

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


def test_timeouts_from_the_configured_files(open_room: Callable[..., Room]) -> None:
    room = open_room(
        {"nginx_config": str(NGINX_APP), "haproxy_config": str(HAPROXY_EDGE), "app_timeout": "90s"}
    )
    answer = room.ask("diag timeouts")
    assert answer["response_type"] == "in_channel"
    nginx_read = str(at(NGINX_APP, "proxy_read_timeout 30s"))
    haproxy_server = str(at(HAPROXY_EDGE, "timeout server  45s"))
    text = str(answer["text"])
    assert text.startswith("Timeouts:") and "chain haproxy → nginx" in text
    assert nginx_read in text and haproxy_server in text
    blocks = str(answer["blocks"])
    assert f"`{nginx_read}`" in blocks and "shorter than the application's 1m30s timeout" in blocks
    diag = [text for kind, text in room.timeline() if kind == "diag"]
    assert len(diag) == 1 and diag[0].startswith("diag timeouts\nTimeouts:")
    assert haproxy_server in diag[0]

    # A path typed in Slack is never read.
    other = room.ask_badly("diag timeouts /etc/passwd")
    assert other["response_type"] == "ephemeral" and "takes no arguments" in str(other["text"])


def test_timeouts_unconfigured_is_a_clear_error(open_room: Callable[..., Room]) -> None:
    room = open_room()
    answer = room.ask("diag timeouts")
    assert answer["response_type"] == "ephemeral"
    assert "No proxy configuration is configured" in str(answer["text"]) and "nginx_config" in str(
        answer["text"]
    )
    assert [kind for kind, _ in room.timeline()] == ["opened"]


def test_resources_from_the_configured_prometheus(open_room: Callable[..., Room]) -> None:
    with FakePrometheus() as prometheus:
        prometheus.add_host("web1:9100")
        prometheus.add_host("db1:9100", stressed=True, busy=97.0, cores=8)
        room = open_room({"prometheus_url": prometheus.url + "/"})

        answer = room.ask("diag resources db1:9100")
        assert answer["response_type"] == "in_channel"
        text = str(answer["text"])
        assert text.startswith("Resources of db1:9100 (from Prometheus")
        assert "CPU 97 % busy on 8 cores" in text and "swap 75 % used (threshold 50 %)" in text
        blocks = str(answer["blocks"])
        assert "Resources of db1:9100" in blocks and "CPU 97 % busy" in blocks
        queries = [call.query["query"] for call in prometheus.calls("/api/v1/query")]
        assert queries and all('instance="db1:9100"' in query for query in queries)

        bad = room.ask_badly('diag resources db1"}')
        assert bad["response_type"] == "ephemeral" and "is not a `host` or `host:port`" in str(bad["text"])
        assert len(prometheus.calls("/api/v1/query")) == len(queries)

    diag = [text for kind, text in room.timeline() if kind == "diag"]
    assert len(diag) == 1 and diag[0].startswith("diag resources db1:9100\nResources of db1:9100")


def test_resources_and_monitors_unconfigured(open_room: Callable[..., Room]) -> None:
    room = open_room()
    resources = room.ask("diag resources web1")
    assert resources["response_type"] == "ephemeral"
    assert "No Prometheus is configured" in str(resources["text"])

    monitors = room.ask("diag monitors checkout")
    assert monitors["response_type"] == "ephemeral"
    text = str(monitors["text"])
    assert "No uptime monitor is configured" in text and "UPTIMEROBOT_API_KEY" in text
    assert [kind for kind, _ in room.timeline()] == ["opened"]
