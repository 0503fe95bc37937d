"""``/incident notify`` end to end: who may send, the form, the preview per
segment and channel, the emails, the delivery message, the status page, the
timeline, and the second-person approval."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.clock import SystemClock
from bot.notices import views as notice_views
from bot.notices.subscribers import import_csv
from bot.store.database import create_engine
from tests.conftest import send_pagerduty
from tests.fakes import FakePagerDuty, FakeSlack
from tests.harness import FirebellServer
from tests.notices.smtp_sink import SmtpSink
from tests.samples import pagerduty_event
from tests.scenario.room import Room

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]
CHANNEL = "inc-1-checkout-api-error-rate-above-5"
SEGMENTS = {
    "notices": {"components": ["checkout", "search"]},
    "notices.segments.enterprise": {
        "channels": ["email", "statuspage", "slack"],
        "variant": "technical",
        "locales": ["en"],
    },
    "notices.segments.consumer": {
        "channels": ["email", "statuspage"],
        "variant": "plain",
        "locales": ["fr", "en"],
    },
}


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


class ChannelRoom(Room):
    def send_notice(self, user: str, message: str, segments: list[str]) -> None:
        """``/incident notify``, the form filled in, the preview confirmed."""
        self.command("notify", user)
        answer = self.client.submit(self.form(), form_values(message, segments), user_id=user).json()
        self.client.submit(answer["view"], {}, user_id=user)

    def form(self) -> dict[str, Any]:
        self.slack.wait_for(
            lambda: any(v.view.get("callback_id") == notice_views.FORM_CALLBACK for v in self.slack.views)
        )
        return next(
            v.view
            for v in reversed(self.slack.views)
            if v.view.get("callback_id") == notice_views.FORM_CALLBACK
        )


def form_values(message: str, segments: list[str]) -> dict[str, Any]:
    return {
        "status": {"value": {"type": "static_select", "selected_option": {"value": "identified"}}},
        "impact": {"value": {"type": "static_select", "selected_option": {"value": "major"}}},
        "components": {"value": {"type": "multi_static_select", "selected_options": [{"value": "checkout"}]}},
        "message": {"value": {"type": "plain_text_input", "value": message}},
        "next_update": {"value": {"type": "static_select", "selected_option": {"value": "30"}}},
        "segments": {"value": {"type": "checkboxes", "selected_options": [{"value": s} for s in segments]}},
    }


def open_room(
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    firebell_env: Env,
    start_firebell: Start,
    tmp_path: Path,
    sink: SmtpSink,
    **extra: Any,
) -> ChannelRoom:
    pagerduty.add_incident("PGR0VU2")
    announce = slack.add_channel("status-announcements")
    config: dict[str, Any] = {**SEGMENTS, **extra}
    config["notices"] = {**config["notices"], "slack_channels": [announce]}
    env = firebell_env(
        config=config,
        FIREBELL_SMTP_URL=sink.url,
        FIREBELL_EMAIL_FROM="status@acme.test",
        FIREBELL_PUBLIC_URL="https://status.acme.test",
    )
    firebell = start_firebell(env)
    (tmp_path / "e.csv").write_text("email\ncto@bigcorp.example\n")
    (tmp_path / "c.csv").write_text("email,locale\nmarie@example.fr,fr\njoe@example.com,en\n")

    async def subscribe() -> None:
        engine = create_engine(env["FIREBELL_DATABASE_URL"])
        now = SystemClock().now()
        await import_csv(engine, tmp_path / "e.csv", "enterprise", "en", now)
        await import_csv(engine, tmp_path / "c.csv", "consumer", "fr", now)
        await engine.dispose()

    asyncio.run(subscribe())
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None)
    channel = slack.channel_by_name(CHANNEL)
    assert channel is not None
    return ChannelRoom(slack, firebell, channel.id)


def test_the_comms_lead_previews_and_sends_a_segmented_notice(
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    firebell_env: Env,
    start_firebell: Start,
    tmp_path: Path,
    sink: SmtpSink,
) -> None:
    room = open_room(slack, pagerduty, firebell_env, start_firebell, tmp_path, sink)
    comms = slack.add_user("comms@acme.test", "Casey Comms")
    refused = room.ask("notify", "U1BYSTANDER")
    assert "Only the incident's commander or comms lead" in refused["text"]

    room.ask(f"role comms <@{comms}>", comms)
    room.command("notify Card payments fail for some customers", comms)
    form = room.form()
    message_block = next(b for b in form["blocks"] if b["block_id"] == "message")
    assert message_block["element"]["initial_value"] == "Card payments fail for some customers"

    empty = room.client.submit(form, form_values(" ", ["enterprise", "consumer"]), user_id=comms).json()
    assert empty["response_action"] == "errors" and "message" in empty["errors"]
    answer = room.client.submit(
        form,
        form_values(
            "Card payments fail for 12% of checkouts. A fix is rolling out.", ["enterprise", "consumer"]
        ),
        user_id=comms,
    ).json()
    assert answer["response_action"] == "update"
    preview = answer["view"]
    text = str(preview["blocks"])
    assert "nothing has been sent yet" in text
    assert "*enterprise* · email · en" in text and "*consumer* · email · fr" in text
    assert "[Identified] Checkout API error rate above 5% — checkout" in text
    assert "cause identifiée" in text
    assert sink.count == 0

    assert room.client.submit(preview, {}, user_id=comms).status_code == 200
    slack.wait_for(lambda: sink.count == 3, timeout=20)
    assert sorted(r.rcpt_tos[0] for r in sink.received) == [
        "cto@bigcorp.example",
        "joe@example.com",
        "marie@example.fr",
    ]

    def report() -> str:
        return next(
            (
                m.text
                for m in slack.messages(room.channel)
                if m.text.startswith(":envelope: Customer notice #1")
            ),
            "",
        )

    slack.wait_for(lambda: "delivered" in report(), timeout=20)
    assert "enterprise · email: queued 0, sent 1, failed 0" in report()
    assert "consumer · email: queued 0, sent 2, failed 0" in report()
    assert "First customer notice of this incident, 0 min after it started." in report()
    announce = slack.channel_by_name("status-announcements")
    assert announce is not None
    copies = slack.messages(announce.id)
    assert len(copies) == 1 and "Card payments fail for 12% of checkouts" in copies[0].text
    timeline = [
        t for kind, t in room.firebell.sql("select kind, text from timeline order by id") if kind == "notice"
    ]
    assert timeline and timeline[0].startswith("Customer notice #1 sent (identified): Card payments fail")
    status = httpx.get(f"{room.firebell.url}/status").text
    assert "Card payments fail for 12% of checkouts" in status
    summary = httpx.get(f"{room.firebell.url}/api/v2/summary.json").json()
    assert summary["incidents"][0]["incident_updates"][0]["status"] == "identified"
    metrics = httpx.get(f"{room.firebell.url}/metrics").text
    assert 'firebell_notice_deliveries_total{channel="email",outcome="sent"} 3.0' in metrics
    assert "firebell_first_notice_seconds" in metrics
    assert "firebell_notices_total 1.0" in metrics
    room.command("postmortem", comms)
    slack.wait_for(lambda: any(f.filename == "postmortem-incident-1.md" and f.content for f in slack.files))
    document = next(f for f in slack.files if f.filename == "postmortem-incident-1.md").content or b""
    assert b"## Customer communication" in document
    assert b"- Customer notices sent: 1." in document and b"- email: 3 of 3 delivered (100.0 %)." in document


def test_a_second_person_must_approve_when_configured(
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    firebell_env: Env,
    start_firebell: Start,
    tmp_path: Path,
    sink: SmtpSink,
) -> None:
    room = open_room(
        slack,
        pagerduty,
        firebell_env,
        start_firebell,
        tmp_path,
        sink,
        **{"notices": {"components": ["checkout"], "require_approval": True}},
    )
    room.ask("role comms <@U2COMMS>", "U2COMMS")
    room.ask("role commander <@U3LEAD>", "U3LEAD")
    room.send_notice("U2COMMS", "We are on it.", ["enterprise"])

    def approval() -> Any:
        return next(
            (m for m in slack.messages(room.channel) if "waits for a second person" in str(m.blocks)), None
        )

    slack.wait_for(lambda: approval() is not None, timeout=20)
    assert sink.count == 0
    before = len(slack.response_posts())
    room.client.click(notice_views.ACTION_APPROVE, "1", user_id="U2COMMS", channel_id=room.channel)
    slack.wait_for(lambda: len(slack.response_posts()) > before)
    assert "A second person must approve" in str(slack.response_posts()[-1].body)
    assert sink.count == 0
    room.client.click(notice_views.ACTION_APPROVE, "1", user_id="U3LEAD", channel_id=room.channel)
    slack.wait_for(lambda: sink.count == 1, timeout=20)
    assert sink.received[0].rcpt_tos == ["cto@bigcorp.example"]
    assert room.firebell.sql("select approved_by from notices") == [("U3LEAD",)]


def test_one_click_unsubscribe_over_http(
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    firebell_env: Env,
    start_firebell: Start,
    tmp_path: Path,
    sink: SmtpSink,
) -> None:
    room = open_room(slack, pagerduty, firebell_env, start_firebell, tmp_path, sink)
    comms = slack.add_user("comms@acme.test", "Casey Comms")
    room.ask(f"role comms <@{comms}>", comms)
    room.send_notice(comms, "We are on it.", ["consumer"])
    slack.wait_for(lambda: sink.count == 2, timeout=20)
    message = next(r.message() for r in sink.received if r.rcpt_tos == ["joe@example.com"])
    path = str(message["List-Unsubscribe"]).strip("<>").removeprefix("https://status.acme.test")
    url = f"{room.firebell.url}{path}"

    page = httpx.get(url)
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert room.firebell.sql("select count(*) from subscribers where unsubscribed_at is not null") == [(0,)]
    forged = httpx.post(url[:-3] + "AAA", content=b"List-Unsubscribe=One-Click")
    assert forged.status_code == 404
    done = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and "You will not receive" in done.text
    assert room.firebell.sql("select email from subscribers where unsubscribed_at is not null") == [
        ("joe@example.com",)
    ]
    assert "firebell_notice_unsubscribes_total 1.0" in httpx.get(f"{room.firebell.url}/metrics").text
