from datetime import UTC, datetime
from typing import Any

from bot.alerts.severity import Severity
from bot.incidents.card import (
    ACTION_ACKNOWLEDGE,
    ACTION_ESCALATE,
    ACTION_POST_UPDATE,
    ACTION_RESOLVE,
    announcement,
    render_card,
    topic,
)
from bot.incidents.model import IncidentView, Status


def view(**changes: Any) -> IncidentView:
    values: dict[str, Any] = {
        "id": 12,
        "title": "Checkout 503s",
        "service": "checkout",
        "severity": Severity.SEV1,
        "status": Status.TRIGGERED,
        "source": "pagerduty",
        "source_url": "https://acme.pagerduty.com/incidents/PX",
        "escalation_policy_id": "P1",
        "teams": (),
        "private": False,
        "alert_count": 1,
        "opened_at": datetime(2026, 11, 29, tzinfo=UTC),
        "acknowledged_at": None,
        "resolved_at": None,
        "channel_id": "C1",
        "channel_name": "inc-12-checkout-503s",
        "card_ts": None,
        "topic": None,
        "setup_done": frozenset(),
        "responders": ("U1", "U2"),
        "missing_responders": ("ghost@acme.test",),
    }
    values.update(changes)
    return IncidentView(**values)


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_card_shows_what_a_responder_needs() -> None:
    blocks = render_card(view())
    text = str(blocks)
    assert "#12 Checkout 503s" in text
    for expected in ("SEV1", "Triggered", "checkout", "<https://acme.pagerduty.com/incidents/PX|PagerDuty>"):
        assert expected in text
    assert "<@U1>, <@U2>" in text
    assert "ghost@acme.test" in text
    assert buttons(blocks) == [ACTION_ACKNOWLEDGE, ACTION_RESOLVE, ACTION_POST_UPDATE, ACTION_ESCALATE]


def test_buttons_follow_the_state() -> None:
    assert buttons(render_card(view(status=Status.ACKNOWLEDGED))) == [
        ACTION_RESOLVE,
        ACTION_POST_UPDATE,
        ACTION_ESCALATE,
    ]
    assert buttons(render_card(view(status=Status.RESOLVED))) == []


def test_text_from_outside_cannot_mention_everyone_or_forge_links() -> None:
    blocks = render_card(view(service="<!channel>", missing_responders=("<https://evil|x>",)))
    text = str(blocks)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil|x>" not in text
    assert "<!here>" not in announcement(view(title="<!here> db down"))


def test_non_http_source_links_are_not_linked() -> None:
    assert "javascript" not in str(render_card(view(source_url="javascript:alert(1)")))


def test_topic_has_severity_status_and_service() -> None:
    assert topic(view(status=Status.ACKNOWLEDGED)) == "SEV1 · Acknowledged · service: checkout"


def test_long_titles_fit_slack_limits() -> None:
    blocks = render_card(view(title="x" * 5000))
    assert len(blocks[0]["text"]["text"]) <= 150


def test_card_shows_the_response_phase() -> None:
    from bot.incidents.model import Phase

    text = str(render_card(view(status=Status.ACKNOWLEDGED, phase=Phase.IDENTIFIED)))
    assert "Acknowledged · identified" in text
