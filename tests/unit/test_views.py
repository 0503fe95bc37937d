from datetime import UTC, datetime, timedelta

from bot.alerts.severity import Severity
from bot.incidents.model import IncidentView, Phase, Role, Status
from bot.incidents.postmortem import render_postmortem
from bot.incidents.response import TimelineItem
from bot.incidents.views import MAX_BLOCKS, MAX_SECTION, home_view, summary_reply, timeline_reply

OPENED = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def incident(**changes: object) -> IncidentView:
    values: dict[str, object] = {
        "id": 7,
        "title": "DB down",
        "service": "db",
        "severity": Severity.SEV1,
        "status": Status.ACKNOWLEDGED,
        "source": "pagerduty",
        "source_url": None,
        "escalation_policy_id": None,
        "teams": (),
        "private": False,
        "alert_count": 1,
        "opened_at": OPENED,
        "acknowledged_at": OPENED + timedelta(minutes=4),
        "resolved_at": None,
        "channel_id": "C7",
        "channel_name": "inc-7-db-down",
        "card_ts": "1.1",
        "topic": None,
        "setup_done": frozenset(),
        "responders": ("U1",),
        "missing_responders": (),
        "phase": Phase.IDENTIFIED,
    }
    values.update(changes)
    return IncidentView(**values)  # type: ignore[arg-type]


def items(count: int, text: str = "something happened") -> list[TimelineItem]:
    return [TimelineItem(OPENED + timedelta(minutes=i), "note", "alice", f"{text} {i}") for i in range(count)]


def test_a_short_timeline_is_blocks_a_long_one_a_file() -> None:
    short = timeline_reply(incident(), items(5))
    assert short.file is None and "something happened 4" in str(short.blocks)
    long = timeline_reply(incident(), items(2000))
    assert long.file is not None and long.blocks == []
    assert "something happened 1999" in long.file.content
    for reply in (short, long):
        assert len(reply.blocks) <= MAX_BLOCKS
        assert all(len(b["text"]["text"]) <= MAX_SECTION for b in reply.blocks if b["type"] == "section")


def test_summary_escapes_and_names_open_actions() -> None:
    update = TimelineItem(OPENED + timedelta(minutes=10), "update", "bob", "<!here> replica promoted")
    reply = summary_reply(incident(), {Role.SCRIBE: "U2"}, update, items(3), OPENED + timedelta(minutes=30))
    text = str(reply.blocks)
    assert "<!here>" not in text and "&lt;!here&gt; replica promoted" in text
    assert "Take command" in text and "30 min" in text


def test_home_lists_my_incidents_first() -> None:
    mine = incident(id=1, severity=Severity.SEV3, responders=("U9",))
    other = incident(id=2, severity=Severity.SEV1, responders=())
    view = home_view([other, mine], "U9", {}, OPENED + timedelta(hours=2))
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert sections[0].startswith(":large_orange_circle: *#1") and "you're on it" in sections[0]
    assert "#2" in sections[1]


def test_postmortem_has_the_key_times() -> None:
    resolved = incident(
        status=Status.RESOLVED,
        phase=Phase.RESOLVED,
        mitigated_at=OPENED + timedelta(minutes=20),
        resolved_at=OPENED + timedelta(minutes=65),
    )
    document = render_postmortem(resolved, {Role.COMMANDER: "U1"}, items(2), {"U1": "Alice"}, OPENED)
    assert "| Time to acknowledge | 4 min |" in document
    assert "| Time to mitigate | 20 min |" in document
    assert "| Time to resolve | 1 h 5 min |" in document
    assert "- **commander:** Alice" in document
