"""Opsgenie and Alertmanager in, Slack out; grouping of alert storms."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bot.incidents.card import ACTION_ACKNOWLEDGE
from tests.conftest import ALERTMANAGER_TOKEN, OPSGENIE_TOKEN, SLACK_SIGNING_SECRET, send_bearer
from tests.fakes import FakeOpsgenie, FakeSlack
from tests.harness import FirebellServer, block_action_body, slack_signature_headers
from tests.samples import alertmanager_alert, alertmanager_group, opsgenie_event

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]
ALERT_ID = "70413a06-38d6-4c85-92b8-5ebc900d42e2-1716213600000"


def incident_channels(slack: FakeSlack) -> list[str]:
    return sorted(c.name for c in slack.channels if c.name.startswith("inc-"))


def settled(firebell: FirebellServer) -> bool:
    return firebell.sql("select count(*) from deliveries where processed_at is null")[0][0] == 0


def test_opsgenie_alert_opens_channel_invites_schedule_and_syncs_both_ways(
    slack: FakeSlack, opsgenie: FakeOpsgenie, firebell_env: Env, start_firebell: Start
) -> None:
    erin = slack.add_user("erin@acme.test", "Erin")
    opsgenie.add_oncall("payments_schedule", "erin@acme.test")
    firebell = start_firebell(firebell_env())

    for priority in ("P2", 2, "2"):
        body = opsgenie_event(priority=priority, alert_id=f"alert-{priority!s}-{type(priority).__name__}")
        assert send_bearer(firebell, "opsgenie", body, OPSGENIE_TOKEN).status_code == 202
    slack.wait_for(lambda: len(incident_channels(slack)) == 3)
    assert [r for (r,) in firebell.sql("select severity from incidents")] == [2, 2, 2]

    channel = slack.channel_by_name(incident_channels(slack)[0])
    assert channel is not None
    slack.wait_for(lambda: erin in slack.channel(channel.id).members)  # type: ignore[union-attr]
    schedule_call = opsgenie.last_call("/v2/schedules/payments_schedule/on-calls")
    assert schedule_call.query["scheduleIdentifierType"] == "name"

    click = block_action_body(
        ACTION_ACKNOWLEDGE,
        "1",
        user_id=erin,
        user_name="erin",
        channel_id=channel.id,
        response_url=slack.new_response_url(),
    )
    httpx.post(
        f"{firebell.url}/slack/events",
        content=click,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **slack_signature_headers(click, SLACK_SIGNING_SECRET),
        },
    )
    ack = opsgenie.wait_for_calls("/v2/alerts/*/acknowledge")[0]
    assert ack.path == "/v2/alerts/alert-P2-str/acknowledge"
    assert ack.body["user"] == "erin@acme.test"

    # Opsgenie-side actions show in the channel.
    for action in ("AddNote", "AssignOwnership", "Escalate", "UnAcknowledge", "Close"):
        send_bearer(firebell, "opsgenie", opsgenie_event(action, alert_id="alert-P2-str"), OPSGENIE_TOKEN)
    slack.wait_for(lambda: any("Resolved in Opsgenie" in m.text for m in slack.messages(channel.id)))
    slack.wait_for(lambda: "Resolved" in slack.channel(channel.id).topic)  # type: ignore[union-attr]
    texts = " | ".join(m.text for m in slack.messages(channel.id))
    for expected in (
        "Note in Opsgenie",
        "Reassigned in Opsgenie",
        "Escalated in Opsgenie",
        "Unacknowledged in Opsgenie",
    ):
        assert expected in texts


def test_opsgenie_token_is_checked(slack: FakeSlack, firebell_env: Env, start_firebell: Start) -> None:
    firebell = start_firebell(firebell_env())
    assert send_bearer(firebell, "opsgenie", opsgenie_event(), "wrong").status_code == 401
    missing = httpx.post(f"{firebell.url}/webhooks/opsgenie", json=opsgenie_event())
    assert missing.status_code == 401
    bad = send_bearer(firebell, "opsgenie", {"action": "Create"}, OPSGENIE_TOKEN)
    assert bad.status_code == 400 and "alert" in bad.json()["error"]
    assert firebell.sql("select count(*) from deliveries")[0][0] == 0


def test_alertmanager_group_fires_repeats_and_resolves(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    firebell = start_firebell(firebell_env())
    firing = alertmanager_group("firing", annotations={"summary": "Checkout error rate high"})
    assert send_bearer(firebell, "alertmanager", firing, ALERTMANAGER_TOKEN).json() == {"status": "accepted"}
    # Alertmanager repeats the notification every repeat_interval.
    assert send_bearer(firebell, "alertmanager", firing, ALERTMANAGER_TOKEN).json() == {"status": "duplicate"}
    slack.wait_for(lambda: incident_channels(slack) == ["inc-1-checkout-error-rate-high"])
    channel = slack.channel_by_name("inc-1-checkout-error-rate-high")
    assert channel is not None
    assert firebell.sql("select severity, service from incidents") == [(1, "checkout")]

    resolved = alertmanager_group(
        "resolved",
        alerts=[alertmanager_alert(status="resolved")],
        annotations={"summary": "Checkout error rate high"},
    )
    assert send_bearer(firebell, "alertmanager", resolved, ALERTMANAGER_TOKEN).status_code == 202
    slack.wait_for(lambda: slack.channel(channel.id).topic.startswith("SEV1 · Resolved"))  # type: ignore[union-attr]
    assert firebell.sql("select status from incidents") == [("resolved",)]

    # The same group firing again reopens the same incident.
    refiring = alertmanager_group(
        "firing",
        alerts=[alertmanager_alert(starts_at="2024-05-20T15:00:00Z")],
        annotations={"summary": "Checkout error rate high"},
    )
    send_bearer(firebell, "alertmanager", refiring, ALERTMANAGER_TOKEN)
    slack.wait_for(lambda: any("Reopened" in m.text for m in slack.messages(channel.id)))
    assert len(slack.calls("conversations.create")) == 1


def test_alert_storm_is_folded_into_one_incident_by_the_grouping_rule(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start
) -> None:
    firebell = start_firebell(firebell_env(config={"grouping": {"window_minutes": 10}}))
    for n in range(50):
        group = alertmanager_group(
            "firing",
            alerts=[alertmanager_alert(alertname=f"Check{n}", instance=f"web-{n}:80")],
            annotations={"summary": f"Symptom {n}"},
        )
        assert send_bearer(firebell, "alertmanager", group, ALERTMANAGER_TOKEN).status_code == 202
    other = alertmanager_group(
        "firing",
        alerts=[alertmanager_alert(alertname="DiskFull", labels={"service": "search", "job": "search"})],
        annotations={"summary": "Search disk full"},
    )
    send_bearer(firebell, "alertmanager", other, ALERTMANAGER_TOKEN)
    firebell.wait_until(lambda: settled(firebell))
    slack.wait_for(lambda: len(incident_channels(slack)) == 2)
    assert firebell.sql("select id, service, alert_count from incidents order by id") == [
        (1, "checkout", 50),
        (2, "search", 1),
    ]
    first = slack.channel_by_name("inc-1-symptom-0")
    assert first is not None
    # Every joining alert is told once, in order; lines that arrive together share a message.
    slack.wait_for(lambda: sum(m.text.count("joined this incident") for m in slack.messages(first.id)) == 49)
    joined = [line for m in slack.messages(first.id) for line in m.text.splitlines() if "joined" in line]
    assert [line.rsplit("Symptom ", 1)[1] for line in joined] == [str(n) for n in range(1, 50)]
    assert len(slack.calls("conversations.create")) == 2
