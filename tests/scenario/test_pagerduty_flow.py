"""PagerDuty in, Slack out: the whole path over real HTTP against the fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from bot.incidents.card import ACTION_ACKNOWLEDGE, ACTION_RESOLVE
from tests.conftest import PD_FROM, SLACK_SIGNING_SECRET, send_pagerduty
from tests.fakes import FakePagerDuty, FakeSlack
from tests.harness import FirebellServer, block_action_body, slack_signature_headers
from tests.samples import pagerduty_event

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]


def card_of(slack: FakeSlack, channel_id: str) -> dict[str, object]:
    cards = [m for m in slack.messages(channel_id) if m.blocks and m.blocks[0].get("type") == "header"]
    assert len(cards) == 1, f"expected one card, found {len(cards)}"
    return {"text": cards[0].text, "blocks": cards[0].blocks, "ts": cards[0].ts}


def test_triggered_incident_opens_a_channel_with_card_topic_bookmark_and_on_call(
    slack: FakeSlack, pagerduty: FakePagerDuty, firebell_env: Env, start_firebell: Start
) -> None:
    alice = slack.add_user("alice@acme.test", "Alice")
    pagerduty.add_oncall("PD6ASNH", "alice@acme.test")
    pagerduty.add_oncall("PD6ASNH", "ghost@acme.test")
    pagerduty.add_oncall("PD6ASNH", "bob@acme.test", level=2)
    announcements = slack.add_channel("incidents")
    firebell = start_firebell(firebell_env(config={"slack": {"incidents_channel": announcements}}))

    response = send_pagerduty(firebell, pagerduty_event(title="Checkout API 503s"))
    assert response.status_code == 202
    assert response.json() == {"status": "accepted"}

    slack.wait_for(lambda: slack.channel_by_name("inc-1-checkout-api-503s") is not None)
    channel = slack.channel_by_name("inc-1-checkout-api-503s")
    assert channel is not None and not channel.is_private
    slack.wait_for(lambda: len(slack.calls("chat.update")) >= 1, message="card updated with responders")
    channel = slack.channel(channel.id)
    assert channel is not None
    assert channel.topic == "SEV1 · Triggered · service: checkout"
    assert alice in channel.members
    assert [b["link"] for b in channel.bookmarks] == ["https://acme.pagerduty.com/incidents/PGR0VU2"]
    card = card_of(slack, channel.id)
    text = str(card["blocks"])
    assert "Checkout API 503s" in text and "SEV1" in text and f"<@{alice}>" in text
    assert ACTION_ACKNOWLEDGE in text and ACTION_RESOLVE in text
    # The one on call who is not in Slack is named, not silently dropped.
    assert "ghost@acme.test" in text
    assert any("ghost@acme.test" in m.text for m in slack.messages(channel.id))
    # Level 2 of the escalation policy is not paged into the channel.
    assert not any("bob" in m.text for m in slack.messages(channel.id))
    assert f"<#{channel.id}>" in slack.last_message(announcements).text
    assert firebell.sql("select kind from timeline") == [("opened",)]


def test_redelivery_changes_nothing(slack: FakeSlack, firebell_env: Env, start_firebell: Start) -> None:
    firebell = start_firebell(firebell_env())
    event = pagerduty_event()
    assert send_pagerduty(firebell, event, webhook_id="delivery-1").json()["status"] == "accepted"
    slack.wait_for_calls("chat.postMessage")
    for _ in range(3):
        again = send_pagerduty(firebell, event, webhook_id="delivery-1")
        assert again.status_code == 202 and again.json() == {"status": "duplicate"}
    # The same event with another delivery id is still the same incident, unchanged.
    assert send_pagerduty(firebell, event, webhook_id="delivery-2").json()["status"] == "accepted"
    firebell.wait_until(
        lambda: firebell.sql("select count(*) from deliveries where processed_at is null")[0][0] == 0
    )
    assert len(slack.calls("conversations.create")) == 1
    assert firebell.sql("select count(*) from incidents")[0][0] == 1
    metrics = httpx.get(f"{firebell.url}/metrics").text
    assert 'firebell_webhook_deliveries_total{outcome="duplicate",source="pagerduty"} 3.0' in metrics


def test_signature_rotation_bad_signatures_and_malformed_bodies(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    firebell = start_firebell(firebell_env(PAGERDUTY_WEBHOOK_SECRETS="old-secret, new-secret"))
    event = pagerduty_event()
    assert send_pagerduty(firebell, event, secret="new-secret").status_code == 202
    assert send_pagerduty(firebell, pagerduty_event(incident_id="P2"), secret="old-secret").status_code == 202

    wrong = send_pagerduty(firebell, pagerduty_event(incident_id="P3"), secret="guess")
    assert wrong.status_code == 401 and "error" in wrong.json()
    unsigned = httpx.post(f"{firebell.url}/webhooks/pagerduty", json=pagerduty_event(incident_id="P4"))
    assert unsigned.status_code == 401

    not_json = send_pagerduty(firebell, b"{not json", secret="new-secret")
    assert not_json.status_code == 400 and not_json.json()["error"] == "body is not valid JSON"
    wrong_shape = send_pagerduty(firebell, b'{"event": {"id": "x"}}', secret="new-secret")
    assert wrong_shape.status_code == 400 and "event_type" in wrong_shape.json()["error"]

    huge = b'{"event": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    too_big = send_pagerduty(firebell, huge, secret="new-secret")
    assert too_big.status_code == 413 and "1 MiB" in too_big.json()["error"]

    firebell.wait_until(lambda: len(slack.calls("conversations.create")) == 2)
    assert firebell.sql("select count(*) from deliveries")[0][0] == 2
    assert httpx.get(f"{firebell.url}/healthz").status_code == 200


def test_webhook_route_edges_and_its_openapi_entry(firebell_env: Env, start_firebell: Start) -> None:
    firebell = start_firebell(firebell_env())
    unknown = httpx.post(f"{firebell.url}/webhooks/nagios", content=b"{}")
    assert unknown.status_code == 404 and "use one of" in unknown.json()["error"]
    assert httpx.get(f"{firebell.url}/webhooks/pagerduty").status_code == 405
    assert httpx.post(f"{firebell.url}/webhooks/pagerduty/extra", content=b"{}").status_code == 404
    # Served by the fast path, documented by FastAPI: both describe one route.
    paths = httpx.get(f"{firebell.url}/openapi.json").json()["paths"]
    assert "post" in paths["/webhooks/{source}"]
    assert firebell.sql("select count(*) from deliveries")[0][0] == 0


def test_the_fastapi_route_answers_like_the_fast_path(firebell_env: Env, start_firebell: Start) -> None:
    firebell = start_firebell(firebell_env())
    assert firebell.app is not None
    inner = firebell.app.app  # the FastAPI app behind the fast path

    async def post_unsigned() -> httpx.Response:
        transport = httpx.ASGITransport(app=inner)
        async with httpx.AsyncClient(transport=transport, base_url="http://firebell") as client:
            return await client.post("/webhooks/pagerduty", json=pagerduty_event())

    direct = asyncio.run(post_unsigned())
    served = httpx.post(f"{firebell.url}/webhooks/pagerduty", json=pagerduty_event())
    assert direct.status_code == served.status_code == 401
    assert direct.content == served.content


def test_acknowledge_button_acknowledges_in_pagerduty_as_the_clicking_user(
    slack: FakeSlack, pagerduty: FakePagerDuty, firebell_env: Env, start_firebell: Start
) -> None:
    carol = slack.add_user("carol@acme.test", "Carol")
    dave = slack.add_user("dave@acme.test", "Dave")
    pagerduty.add_user("carol@acme.test", "Carol")
    pagerduty.add_incident("PGR0VU2")
    pagerduty.add_incident("PXYZ")
    firebell = start_firebell(firebell_env())
    send_pagerduty(firebell, pagerduty_event())
    send_pagerduty(firebell, pagerduty_event(incident_id="PXYZ", title="Search down"))
    slack.wait_for(lambda: len([c for c in slack.channels if c.name.startswith("inc-")]) == 2)
    first = slack.channel_by_name("inc-1-checkout-api-error-rate-above-5")
    assert first is not None
    slack.wait_for(lambda: any(m.blocks for m in slack.messages(first.id)))

    click = block_action_body(
        ACTION_ACKNOWLEDGE,
        "1",
        user_id=carol,
        user_name="carol",
        channel_id=first.id,
        response_url=slack.new_response_url(),
    )
    response = httpx.post(
        f"{firebell.url}/slack/events",
        content=click,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_signature_headers(click, SLACK_SIGNING_SECRET),
        },
    )
    assert response.status_code == 200
    pagerduty.wait_for(lambda: pagerduty.incident_state("PGR0VU2").status == "acknowledged")
    assert pagerduty.last_call("PUT /incidents/PGR0VU2").headers["From"] == "carol@acme.test"
    slack.wait_for(lambda: "Acknowledged" in slack.channel(first.id).topic)  # type: ignore[union-attr]
    card = card_of(slack, first.id)
    assert ACTION_ACKNOWLEDGE not in str(card["blocks"]) and ACTION_RESOLVE in str(card["blocks"])
    assert any(f"Acknowledged by <@{carol}>" in m.text for m in slack.messages(first.id))

    # Dave is no PagerDuty user: the configured From address speaks for him.
    second = slack.channel_by_name("inc-2-search-down")
    assert second is not None
    resolve = block_action_body(
        ACTION_RESOLVE,
        "2",
        user_id=dave,
        user_name="dave",
        channel_id=second.id,
        response_url=slack.new_response_url(),
    )
    httpx.post(
        f"{firebell.url}/slack/events",
        content=resolve,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_signature_headers(resolve, SLACK_SIGNING_SECRET),
        },
    )
    pagerduty.wait_for(lambda: pagerduty.incident_state("PXYZ").status == "resolved")
    assert pagerduty.last_call("PUT /incidents/PXYZ").headers["From"] == PD_FROM

    # PagerDuty echoes the change back as a webhook: nothing new happens.
    posted = len(slack.messages(first.id))
    send_pagerduty(firebell, pagerduty_event("incident.acknowledged", agent="Carol"))
    firebell.wait_until(
        lambda: firebell.sql("select count(*) from deliveries where processed_at is null")[0][0] == 0
    )
    assert len(slack.messages(first.id)) == posted

    timeline = firebell.sql("select kind, actor from timeline where incident_id = 1 order by id")
    # The first to acknowledge becomes the commander.
    assert timeline == [("opened", "Earline Greenholt"), ("acknowledged", "carol"), ("role", "carol")]
    assert firebell.sql("select role, user_id from incident_roles where incident_id = 1") == [
        ("commander", carol)
    ]


def test_button_click_with_bad_slack_signature_is_refused(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    firebell = start_firebell(firebell_env())
    click = block_action_body(
        ACTION_ACKNOWLEDGE,
        "1",
        user_id="U1",
        user_name="x",
        channel_id="C1",
        response_url=slack.new_response_url(),
    )
    response = httpx.post(
        f"{firebell.url}/slack/events",
        content=click,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_signature_headers(click, "wrong"),
        },
    )
    assert response.status_code == 401


def test_pager_side_changes_show_in_the_channel_and_on_the_card(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    firebell = start_firebell(firebell_env())
    send_pagerduty(firebell, pagerduty_event())
    slack.wait_for(lambda: slack.channel_by_name("inc-1-checkout-api-error-rate-above-5") is not None)
    channel = slack.channel_by_name("inc-1-checkout-api-error-rate-above-5")
    assert channel is not None
    steps = [
        ("incident.acknowledged", "Acknowledged in PagerDuty by Earline Greenholt"),
        ("incident.annotated", "Rolled back deploy 4711"),
        ("incident.priority_updated", "Severity changed to SEV3"),
        ("incident.unacknowledged", "Unacknowledged in PagerDuty"),
        ("incident.escalated", "Escalated in PagerDuty"),
        ("incident.reassigned", "Reassigned in PagerDuty"),
        ("incident.resolved", "Resolved in PagerDuty"),
        ("incident.reopened", "Reopened in PagerDuty"),
    ]
    for minute, (event_type, _) in enumerate(steps):
        extra = {"priority": "P3"} if event_type == "incident.priority_updated" else {}
        send_pagerduty(
            firebell,
            pagerduty_event(event_type, occurred_at=f"2024-05-20T14:{minute + 1:02d}:00.000Z", **extra),
        )
    for _, expected in steps:
        slack.wait_for(
            lambda expected=expected: any(expected in m.text for m in slack.messages(channel.id)),
            message=expected,
        )
    slack.wait_for(lambda: slack.channel(channel.id).topic.startswith("SEV3 · Triggered"))  # type: ignore[union-attr]
    kinds = [k for (k,) in firebell.sql("select kind from timeline order by id")]
    assert kinds == [
        "opened",
        "acknowledge",
        "note",
        "priority",
        "unacknowledge",
        "escalate",
        "reassign",
        "resolve",
        "reopen",
    ]
