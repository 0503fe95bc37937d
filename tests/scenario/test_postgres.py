"""The same flows on PostgreSQL, including two firebell replicas on one database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import send_pagerduty
from tests.fakes import FakeSlack
from tests.harness import FirebellServer
from tests.samples import pagerduty_event

pytestmark = pytest.mark.postgres

Start = Callable[[dict[str, str]], FirebellServer]
Env = Callable[..., dict[str, str]]


def test_alert_to_channel_on_postgresql(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start, postgres_url: str
) -> None:
    firebell = start_firebell(firebell_env(FIREBELL_DATABASE_URL=postgres_url))
    assert send_pagerduty(firebell, pagerduty_event(), webhook_id="d1").json() == {"status": "accepted"}
    assert send_pagerduty(firebell, pagerduty_event(), webhook_id="d1").json() == {"status": "duplicate"}
    send_pagerduty(firebell, pagerduty_event("incident.acknowledged", occurred_at="2024-05-20T14:05:00Z"))
    slack.wait_for(lambda: slack.channel_by_name("inc-1-checkout-api-error-rate-above-5") is not None)
    channel = slack.channel_by_name("inc-1-checkout-api-error-rate-above-5")
    assert channel is not None
    slack.wait_for(lambda: slack.channel(channel.id).topic.startswith("SEV1 · Acknowledged"))  # type: ignore[union-attr]
    assert firebell.sql("select status from incidents") == [("acknowledged",)]


def test_two_replicas_on_one_database_open_each_channel_once(
    slack: FakeSlack, firebell_env: Env, start_firebell: Start, postgres_url: str
) -> None:
    env = firebell_env(FIREBELL_DATABASE_URL=postgres_url)
    replicas = [start_firebell(env), start_firebell(env)]
    for n in range(20):
        # Deliveries for one incident land on either replica, as behind a load balancer.
        target = replicas[n % 2]
        incident = f"P{n // 2}"
        event_type = "incident.triggered" if n % 2 == 0 else "incident.acknowledged"
        response = send_pagerduty(
            target, pagerduty_event(event_type, incident_id=incident, title=f"Outage {n // 2}")
        )
        assert response.status_code == 202
    slack.wait_for(lambda: len([c for c in slack.channels if c.name.startswith("inc-")]) == 10, timeout=30)
    slack.wait_for(
        lambda: all(
            c.topic.startswith("SEV1 · Acknowledged") for c in slack.channels if c.name.startswith("inc-")
        ),
        timeout=30,
    )
    assert len(slack.calls("conversations.create")) == 10
    assert replicas[0].sql("select count(*) from incidents")[0][0] == 10
