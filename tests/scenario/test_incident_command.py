"""``/incident`` end to end: signed commands, clicks, forms and events over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from bot.incidents.card import ACTION_POST_UPDATE
from bot.incidents.views import DECLARE_CALLBACK, UPDATE_CALLBACK
from tests.conftest import SLACK_SIGNING_SECRET, send_pagerduty
from tests.fakes import FakePagerDuty, FakeSlack
from tests.harness import FirebellServer, SlackClient
from tests.samples import pagerduty_event

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]
CHANNEL = "inc-1-checkout-api-error-rate-above-5"


@dataclass
class World:
    slack: FakeSlack
    pagerduty: FakePagerDuty
    firebell: FirebellServer
    client: SlackClient
    channel: str
    alice: str
    bob: str

    def replies(self, response_url: str, count: int = 1) -> list[dict[str, object]]:
        self.slack.wait_for(
            lambda: len(self.slack.response_posts(response_url)) >= count, message=response_url
        )
        return [p.body for p in self.slack.response_posts(response_url)]

    def channel_texts(self) -> str:
        return "\n".join(m.text for m in self.slack.messages(self.channel))

    def wait_in_channel(self, text: str) -> None:
        self.slack.wait_for(lambda: text in self.channel_texts(), message=text)


@pytest.fixture
def world(
    slack: FakeSlack, pagerduty: FakePagerDuty, firebell_env: Env, start_firebell: Start
) -> Iterator[World]:
    alice = slack.add_user("alice@acme.test", "Alice")
    bob = slack.add_user("bob@acme.test", "Bob")
    pagerduty.add_user("alice@acme.test", "Alice")
    pagerduty.add_incident("PGR0VU2")
    firebell = start_firebell(
        firebell_env(config={"services.checkout": {"pagerduty_service_id": "PSERVICE"}})
    )
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None)
    channel = slack.channel_by_name(CHANNEL)
    assert channel is not None
    slack.wait_for(lambda: any(m.blocks for m in slack.messages(channel.id)))
    yield World(
        slack,
        pagerduty,
        firebell,
        SlackClient(firebell.url, SLACK_SIGNING_SECRET, slack.new_response_url),
        channel.id,
        alice,
        bob,
    )


def test_help_and_wrong_commands_get_helpful_ephemeral_answers(world: World) -> None:
    answer, _ = world.client.command("help", user_id=world.alice, channel_id="CRANDOM")
    assert answer.status_code == 200
    help_text = answer.json()["text"]
    for sub in (
        "declare",
        "status",
        "sev 1-4",
        "role commander",
        "escalate",
        "timeline",
        "summary",
        "postmortem",
    ):
        assert sub in help_text
    unknown, _ = world.client.command("dance", user_id=world.alice, channel_id=world.channel)
    assert unknown.json()["response_type"] == "ephemeral"
    assert "I don't know `dance`" in unknown.json()["text"]
    bad_sev, _ = world.client.command("sev 7", user_id=world.alice, channel_id=world.channel)
    assert "Usage: `/incident sev 1-4`" in bad_sev.json()["text"]
    no_user, _ = world.client.command("role commander alice", user_id=world.alice, channel_id=world.channel)
    assert "@mention" in no_user.json()["text"]
    # A command that needs an incident, outside an incident channel.
    answer, url = world.client.command("summary", user_id=world.alice, channel_id="CRANDOM")
    assert answer.status_code == 200
    assert "not an incident channel" in str(world.replies(url)[0]["text"])


def test_state_changes_show_in_the_channel_and_follow_the_pager(world: World) -> None:
    world.client.command("status identified bad deploy 4711", user_id=world.alice, channel_id=world.channel)
    world.wait_in_channel("*Identified*")
    world.client.command("sev 2", user_id=world.alice, channel_id=world.channel)
    world.slack.wait_for(lambda: world.slack.channel(world.channel).topic.startswith("SEV2"))  # type: ignore[union-attr]
    world.pagerduty.wait_for(lambda: len(world.pagerduty.calls("PUT /incidents/PGR0VU2")) >= 1)
    priority_put = world.pagerduty.last_call("PUT /incidents/PGR0VU2").json()
    assert priority_put["incident"]["priority"]["type"] == "priority_reference"

    world.client.command("ack", user_id=world.alice, channel_id=world.channel, user_name="alice")
    world.pagerduty.wait_for(lambda: world.pagerduty.incident_state("PGR0VU2").status == "acknowledged")
    world.wait_in_channel("is the *commander*")
    world.client.command("resolve rolled back", user_id=world.alice, channel_id=world.channel)
    world.pagerduty.wait_for(lambda: world.pagerduty.incident_state("PGR0VU2").status == "resolved")
    world.wait_in_channel("rolled back")
    _, url = world.client.command("resolve", user_id=world.alice, channel_id=world.channel)
    assert "already resolved" in str(world.replies(url)[0]["text"])
    world.client.command("reopen", user_id=world.alice, channel_id=world.channel)
    world.wait_in_channel("Reopened by")
    kinds = [k for (k,) in world.firebell.sql("select kind from timeline order by id")]
    assert kinds[:7] == ["opened", "status", "severity", "acknowledged", "role", "resolved", "triggered"]


def test_roles_updates_timeline_summary_and_postmortem(world: World) -> None:
    world.client.command(f"role commander <@{world.bob}|bob>", user_id=world.alice, channel_id=world.channel)
    world.wait_in_channel(f"<@{world.bob}> is now the *commander*")
    world.slack.wait_for(lambda: world.bob in world.slack.channel(world.channel).members)  # type: ignore[union-attr]
    _, url = world.client.command("roles", user_id=world.alice, channel_id=world.channel)
    assert f"*Commander*: <@{world.bob}>" in str(world.replies(url)[0]["blocks"])

    world.client.command(
        "update <!channel> failover to replica done", user_id=world.bob, channel_id=world.channel
    )
    world.wait_in_channel("*Status update*")
    posted = world.channel_texts()
    assert "<!channel>" not in posted and "&lt;!channel&gt; failover to replica done" in posted
    assert world.firebell.sql("select last_update_at is not null from incidents") == [(1,)]

    world.client.command("timeline add paged the DBA", user_id=world.bob, channel_id=world.channel)
    # A 📌 on any message in the channel copies it to the timeline.
    ts = world.slack.messages(world.channel)[-1].ts
    world.client.event(
        {
            "type": "reaction_added",
            "user": world.alice,
            "reaction": "pushpin",
            "item": {"type": "message", "channel": world.channel, "ts": ts},
            "event_ts": ts,
        }
    )
    world.firebell.wait_until(
        lambda: world.firebell.sql("select count(*) from timeline where kind = 'pin'")[0][0] == 1
    )
    _, url = world.client.command("timeline", user_id=world.alice, channel_id=world.channel)
    timeline = str(world.replies(url)[0]["blocks"])
    assert "paged the DBA" in timeline and "pinned by" in timeline

    _, url = world.client.command("summary", user_id=world.alice, channel_id=world.channel)
    summary = str(world.replies(url)[0]["blocks"])
    for expected in (
        "Checkout API error rate above 5%",
        "SEV1",
        "failover to replica done",
        f"<@{world.bob}>",
    ):
        assert expected in summary

    world.client.command("postmortem", user_id=world.alice, channel_id=world.channel)
    world.slack.wait_for(lambda: any(f.filename.endswith(".md") and f.completed for f in world.slack.files))
    document = next(f for f in world.slack.files if f.filename.endswith(".md"))
    assert document.content is not None
    markdown = document.content.decode()
    for section in (
        "# Postmortem: #1",
        "## Key times",
        "Time to acknowledge",
        "## Timeline",
        "## Participants",
    ):
        assert section in markdown
    assert world.channel in document.channels


def test_commands_name_the_incident_from_another_channel(world: World) -> None:
    _, url = world.client.command(
        f"summary <#{world.channel}|{CHANNEL}>", user_id=world.alice, channel_id="CRANDOM"
    )
    assert "Checkout API error rate" in str(world.replies(url)[0]["blocks"])
    _, url = world.client.command("roles #inc-1", user_id=world.alice, channel_id="CRANDOM")
    assert "Roles in #1" in str(world.replies(url)[0]["text"])


def test_declare_opens_a_form_then_an_incident_like_an_alert(world: World) -> None:
    answer, _ = world.client.command("declare Search is slow", user_id=world.alice, channel_id="CRANDOM")
    assert answer.status_code == 200
    world.slack.wait_for(
        lambda: any(v.view.get("callback_id") == DECLARE_CALLBACK for v in world.slack.views)
    )
    form = next(v.view for v in world.slack.views if v.view.get("callback_id") == DECLARE_CALLBACK)
    assert form["blocks"][0]["element"]["initial_value"] == "Search is slow"
    values = {
        "title": {"value": {"type": "plain_text_input", "value": "Search is slow"}},
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "2"}}},
        "service": {"value": {"type": "static_select", "selected_option": {"value": "checkout"}}},
        "description": {"value": {"type": "plain_text_input", "value": "p99 at 4 s"}},
        "options": {"value": {"type": "checkboxes", "selected_options": [{"value": "page"}]}},
    }
    assert world.client.submit(form, values, user_id=world.alice).status_code == 200
    world.slack.wait_for(lambda: world.slack.channel_by_name("inc-2-search-is-slow") is not None)
    declared = world.slack.channel_by_name("inc-2-search-is-slow")
    assert declared is not None
    world.slack.wait_for(lambda: world.alice in world.slack.channel(declared.id).members)  # type: ignore[union-attr]
    assert world.slack.channel(declared.id).topic.startswith("SEV2")  # type: ignore[union-attr]
    # Paged through PagerDuty with a dedup key that links the echo back.
    world.pagerduty.wait_for(lambda: len(world.pagerduty.calls("POST /incidents")) == 1)
    created = world.pagerduty.last_call("POST /incidents").json()["incident"]
    assert created["incident_key"] == "firebell-2"
    assert world.firebell.sql("select role, user_id from incident_roles where incident_id = 2") == [
        ("commander", world.alice)
    ]
    # An empty title is refused in the form itself.
    empty = dict(values, title={"value": {"type": "plain_text_input", "value": " "}})
    refused = world.client.submit(form, empty, user_id=world.alice)
    assert refused.json()["response_action"] == "errors"


def test_post_update_button_opens_a_prefilled_form(world: World) -> None:
    world.client.command("update first update", user_id=world.alice, channel_id=world.channel)
    world.wait_in_channel("first update")
    world.client.click(ACTION_POST_UPDATE, "1", user_id=world.alice, channel_id=world.channel)
    world.slack.wait_for(lambda: any(v.view.get("callback_id") == UPDATE_CALLBACK for v in world.slack.views))
    form = next(v.view for v in world.slack.views if v.view.get("callback_id") == UPDATE_CALLBACK)
    assert form["blocks"][-1]["element"]["initial_value"] == "first update"
    world.client.submit(
        form,
        {"update": {"value": {"type": "plain_text_input", "value": "second update"}}},
        user_id=world.alice,
    )
    world.wait_in_channel("second update")


def test_app_home_lists_open_incidents_mine_first(world: World) -> None:
    world.client.command(f"role scribe <@{world.bob}>", user_id=world.alice, channel_id=world.channel)
    world.wait_in_channel("is now the *scribe*")
    world.client.event({"type": "app_home_opened", "user": world.bob, "tab": "home", "channel": "D1"})
    world.slack.wait_for(lambda: world.slack.home_view(world.bob) is not None)
    home = world.slack.home_view(world.bob)
    assert home is not None
    text = str(home.view["blocks"])
    assert (
        "#1 Checkout API error rate above 5%" in text
        and "you're on it" in text
        and f"<#{world.channel}>" in text
    )


def test_escalation_to_a_person_and_by_level(world: World) -> None:
    world.client.command(f"escalate <@{world.alice}>", user_id=world.bob, channel_id=world.channel)
    world.slack.wait_for(lambda: world.alice in world.slack.channel(world.channel).members)  # type: ignore[union-attr]
    world.pagerduty.wait_for(
        lambda: any(
            "assignments" in c.json().get("incident", {})
            for c in world.pagerduty.calls("PUT /incidents/PGR0VU2")
        )
    )
    world.client.command("escalate", user_id=world.bob, channel_id=world.channel)
    world.pagerduty.wait_for(
        lambda: any(
            "escalation_level" in c.json().get("incident", {})
            for c in world.pagerduty.calls("PUT /incidents/PGR0VU2")
        )
    )
    _, url = world.client.command("escalate nosuchservice", user_id=world.bob, channel_id=world.channel)
    assert "I don't know the service `nosuchservice`" in str(world.replies(url)[0]["text"])


def test_only_configured_groups_may_resolve(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    lead = slack.add_user("lead@acme.test", "Lead")
    intern = slack.add_user("intern@acme.test", "Intern")
    group = slack.add_usergroup("leads", [lead])
    firebell = start_firebell(firebell_env(config={"permissions": {"resolve": [group]}}))
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name(CHANNEL) is not None)
    channel = slack.channel_by_name(CHANNEL)
    assert channel is not None
    client = SlackClient(firebell.url, SLACK_SIGNING_SECRET, slack.new_response_url)
    _, url = client.command("resolve", user_id=intern, channel_id=channel.id)
    slack.wait_for(lambda: bool(slack.response_posts(url)))
    assert f"Only members of <!subteam^{group}> may resolve incidents." in str(
        slack.response_posts(url)[0].body["text"]
    )
    assert firebell.sql("select status from incidents") == [("triggered",)]
    client.command("resolve", user_id=lead, channel_id=channel.id)
    firebell.wait_until(lambda: firebell.sql("select status from incidents") == [("resolved",)])
