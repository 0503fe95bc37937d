"""The reminder, digest and nudge texts, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.alerts.severity import Severity
from bot.incidents.card import ACTION_ACKNOWLEDGE, ACTION_ESCALATE, ACTION_POST_UPDATE, ACTION_SNOOZE
from bot.incidents.model import IncidentView, Phase, Status
from bot.incidents.reminder_messages import (
    Change,
    Message,
    digest_message,
    format_duration,
    mention,
    nudge_message,
    reminder_message,
)

OPENED = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


def view(**changes: Any) -> IncidentView:
    values: dict[str, Any] = {
        "id": 12,
        "title": "Checkout <!channel> 503s",
        "service": "checkout",
        "severity": Severity.SEV1,
        "status": Status.TRIGGERED,
        "source": "pagerduty",
        "source_url": None,
        "escalation_policy_id": None,
        "teams": (),
        "private": False,
        "alert_count": 1,
        "opened_at": OPENED,
        "acknowledged_at": None,
        "resolved_at": None,
        "channel_id": "C1",
        "channel_name": "inc-12-checkout",
        "card_ts": None,
        "topic": None,
        "setup_done": frozenset(),
        "responders": (),
        "missing_responders": (),
    }
    values.update(changes)
    return IncidentView(**values)


def actions(message: Message) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message.blocks if b["type"] == "actions" for e in b["elements"]}


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (-3, "0 min"),
        (0, "0 min"),
        (42, "42 min"),
        (60, "1 h"),
        (65, "1 h 5 min"),
        (1440, "1 d"),
        (1625, "1 d 3 h"),
    ],
)
def test_format_duration(minutes: int, expected: str) -> None:
    assert format_duration(timedelta(minutes=minutes, seconds=30)) == expected


def test_reminder_addresses_the_commander() -> None:
    incident = view(last_update_at=OPENED + timedelta(minutes=22))
    message = reminder_message(incident, "U123ABC", OPENED + timedelta(minutes=42), 10)
    assert message.text == (
        "<@U123ABC> Status update due for #12 (SEV1, investigating for 42 min); last update 20 min ago."
    )
    buttons = actions(message)
    assert buttons[ACTION_POST_UPDATE]["value"] == "12"
    assert buttons[ACTION_SNOOZE]["value"] == "12"
    assert buttons[ACTION_SNOOZE]["text"]["text"] == "Snooze 10 min"


def test_reminder_without_a_commander_pings_nobody() -> None:
    incident = view(phase=Phase.MONITORING)
    message = reminder_message(incident, None, OPENED + timedelta(minutes=90), 2.5)
    assert message.text.startswith(
        "Status update due for #12 (SEV1, monitoring for 1 h 30 min); no update posted yet."
    )
    assert "<" not in message.text and "<!" not in str(message.blocks)
    assert actions(message)[ACTION_SNOOZE]["text"]["text"] == "Snooze 2.5 min"


@pytest.mark.parametrize("bad", ["<!channel>", "U1>|x", "here", "", "u123abc"])
def test_only_real_user_ids_are_mentioned(bad: str) -> None:
    assert mention(bad) is None
    message = reminder_message(view(), bad, OPENED, 10)
    assert "<@" not in message.text and "<!" not in message.text


def test_digest_lists_the_newest_changes_escaped() -> None:
    changes = [Change(OPENED + timedelta(minutes=n), f"step {n}") for n in range(20)]
    changes.append(Change(OPENED + timedelta(minutes=21), "Note: <!here> see <https://x|y> & more"))
    incident = view(status=Status.ACKNOWLEDGED)
    message = digest_message(incident, changes, OPENED + timedelta(minutes=30), "since the last update")
    body = message.blocks[0]["text"]["text"]
    assert "SEV1 · Acknowledged · Investigating · open for 30 min" in message.text
    assert "*Changes since the last update:*" in body
    assert "and 6 more" in body
    lines = [line for line in body.splitlines() if line.startswith("• ")]
    assert len(lines) == 16  # 15 changes and the "more" line
    assert "step 5" not in body and "step 6" in body and "step 19" in body
    assert "&lt;!here&gt; see &lt;https://x|y&gt; &amp; more" in body
    assert "<!here>" not in body and "<!channel>" not in body
    assert "Checkout &lt;!channel&gt; 503s" in body
    assert actions(message)[ACTION_POST_UPDATE]["value"] == "12"


def test_digest_without_changes_says_so() -> None:
    message = digest_message(view(), [], OPENED + timedelta(minutes=15), "since the incident opened")
    assert "No changes recorded since the incident opened" in message.blocks[0]["text"]["text"]


def test_nudge() -> None:
    message = nudge_message(view(), OPENED + timedelta(minutes=10, seconds=20))
    assert message.text == "Nobody has acknowledged #12 after 10 minutes."
    buttons = actions(message)
    assert buttons[ACTION_ESCALATE]["value"] == "12" and "confirm" in buttons[ACTION_ESCALATE]
    assert buttons[ACTION_ACKNOWLEDGE]["value"] == "12"
    assert nudge_message(view(), OPENED + timedelta(minutes=1)).text.endswith("after 1 minute.")
