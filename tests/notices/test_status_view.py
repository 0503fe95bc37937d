"""The status page's pure view: rows in, component states, incidents and Statuspage JSON out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest

from bot.notices.config import EVERYONE, SegmentConfig
from bot.notices.model import Impact, NoticeStatus
from bot.notices.status_view import (
    ATOM_NS,
    ComponentStatus,
    NoticeRow,
    StatusView,
    atom_feed,
    build_status_view,
    component_ids,
    email_segments,
    feed_incidents,
    incidents_json,
    normalize_email,
    push_segment,
    slug,
    summary_json,
    visible_on_status_page,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVERY = {EVERYONE: SegmentConfig()}
COMPONENTS = ("API", "Dashboard", "Webhooks")
_ids = iter(range(1, 10_000))


def row(
    incident: int | None,
    status: str,
    message: str = "update",
    *,
    minutes_ago: float = 0,
    impact: str = "minor",
    components: tuple[str, ...] = (),
    title: str | None = None,
    segments: tuple[str, ...] = (),
    channels: tuple[str, ...] = (),
) -> NoticeRow:
    return NoticeRow(
        id=next(_ids),
        incident_id=incident,
        incident_title=title if title is not None else (f"Incident {incident}" if incident else None),
        incident_opened_at=NOW - timedelta(days=30) if incident else None,
        status=status,
        impact=impact,
        components=components,
        message=message,
        segments=segments,
        channels=channels,
        published_at=NOW - timedelta(minutes=minutes_ago),
    )


def view(*rows: NoticeRow, components: tuple[str, ...] = COMPONENTS) -> StatusView:
    return build_status_view(rows, components=components, segments=EVERY, title="Acme", now=NOW)


def states(v: StatusView) -> dict[str, str]:
    return {c.name: str(c.status) for c in v.components}


def test_no_notices_means_all_systems_operational() -> None:
    v = view()
    assert states(v) == dict.fromkeys(COMPONENTS, "operational")
    assert (v.status.indicator, v.status.description) == (Impact.NONE, "All Systems Operational")
    assert v.open_incidents == () and v.past_incidents == ()
    assert v.updated_at == NOW


@pytest.mark.parametrize(
    ("impact", "component", "indicator", "description"),
    [
        ("none", "operational", "none", "All Systems Operational"),
        ("minor", "degraded_performance", "minor", "Minor Service Outage"),
        ("major", "partial_outage", "major", "Partial System Outage"),
        ("critical", "major_outage", "critical", "Major Service Outage"),
    ],
)
def test_open_incident_impact_sets_named_components(
    impact: str, component: str, indicator: str, description: str
) -> None:
    v = view(row(1, "investigating", impact=impact, components=("API",)))
    assert states(v) == {"API": component, "Dashboard": "operational", "Webhooks": "operational"}
    assert (str(v.status.indicator), v.status.description) == (indicator, description)


def test_the_latest_notice_decides_which_components_and_how_bad() -> None:
    v = view(
        row(1, "investigating", impact="critical", components=("API", "Dashboard"), minutes_ago=30),
        row(1, "identified", impact="minor", components=("Dashboard",), minutes_ago=10),
    )
    assert states(v)["API"] == "operational"
    assert states(v)["Dashboard"] == "degraded_performance"
    assert v.status.indicator is Impact.MINOR
    (incident,) = v.open_incidents
    assert incident.impact is Impact.CRITICAL  # the incident keeps its worst impact
    assert incident.current_impact is Impact.MINOR
    assert incident.status is NoticeStatus.IDENTIFIED


def test_the_worst_open_incident_wins_per_component_and_overall() -> None:
    v = view(
        row(1, "investigating", impact="minor", components=("API",)),
        row(2, "identified", impact="major", components=("API", "Webhooks")),
    )
    assert states(v) == {"API": "partial_outage", "Dashboard": "operational", "Webhooks": "partial_outage"}
    assert v.status.indicator is Impact.MAJOR
    assert [i.number for i in v.open_incidents] == [2, 1]


def test_updates_are_newest_first_with_component_transitions() -> None:
    v = view(
        row(1, "investigating", "first", impact="major", components=("API",), minutes_ago=30),
        row(1, "identified", "second", impact="minor", components=("API",), minutes_ago=20),
        row(1, "monitoring", "third", impact="minor", components=("API",), minutes_ago=10),
    )
    (incident,) = v.open_incidents
    assert [u.body for u in incident.updates] == ["third", "second", "first"]
    first = incident.updates[-1].components[0]
    assert (first.id, first.old_status, first.new_status) == (
        "api",
        ComponentStatus.OPERATIONAL,
        ComponentStatus.PARTIAL_OUTAGE,
    )
    second = incident.updates[1].components[0]
    assert (second.old_status, second.new_status) == (
        ComponentStatus.PARTIAL_OUTAGE,
        ComponentStatus.DEGRADED_PERFORMANCE,
    )
    assert incident.monitoring_at == NOW - timedelta(minutes=10)
    assert incident.created_at == NOW - timedelta(minutes=30)
    assert incident.started_at == NOW - timedelta(days=30)


def test_resolved_incidents_are_past_for_fourteen_days() -> None:
    recent = [
        row(1, "investigating", impact="critical", components=("API",), minutes_ago=13 * 24 * 60 + 60),
        row(1, "resolved", "fixed", impact="critical", components=("API",), minutes_ago=13 * 24 * 60),
    ]
    old = [
        row(2, "investigating", minutes_ago=15 * 24 * 60 + 60),
        row(2, "resolved", minutes_ago=15 * 24 * 60),
    ]
    v = view(*recent, *old)
    assert v.open_incidents == ()
    assert [i.number for i in v.past_incidents] == [1]
    assert v.past_incidents[0].resolved_at == NOW - timedelta(days=13)
    assert states(v)["API"] == "operational"
    assert v.status.indicator is Impact.NONE


def test_an_open_incident_stays_however_old_its_last_update() -> None:
    v = view(row(1, "monitoring", impact="major", components=("API",), minutes_ago=30 * 24 * 60))
    assert [i.number for i in v.open_incidents] == [1]
    assert states(v)["API"] == "partial_outage"


def test_a_notice_without_incident_is_an_incident_of_its_own() -> None:
    v = view(row(None, "identified", "Payments are slow\nMore detail", components=("API",)))
    (incident,) = v.open_incidents
    assert incident.id.startswith("firebell-notice-")
    assert incident.name == "Payments are slow"


def test_an_unconfigured_component_an_open_incident_names_is_still_shown() -> None:
    v = view(row(1, "investigating", impact="major", components=("Billing",)))
    assert [c.name for c in v.components] == [*COMPONENTS, "Billing"]
    assert states(v)["Billing"] == "partial_outage"
    assert [c.position for c in v.components] == [1, 2, 3, 4]


def test_notices_kept_off_the_status_page() -> None:
    segments = {
        "customers": SegmentConfig(channels=["email", "statuspage"]),
        "internal": SegmentConfig(channels=["slack", "email"]),
    }
    assert visible_on_status_page(row(1, "investigating"), segments)
    assert visible_on_status_page(row(1, "investigating", segments=("customers",)), segments)
    assert not visible_on_status_page(row(1, "investigating", segments=("internal",)), segments)
    assert not visible_on_status_page(row(1, "investigating", channels=("email",)), segments)
    assert visible_on_status_page(row(1, "investigating", channels=("email", "statuspage")), segments)
    internal_only = row(1, "investigating", impact="critical", components=("API",), segments=("internal",))
    v = build_status_view([internal_only], components=COMPONENTS, segments=segments, title="t", now=NOW)
    assert v.open_incidents == () and v.status.indicator is Impact.NONE


def test_segments_for_the_subscribe_form() -> None:
    segments = {
        "ops": SegmentConfig(channels=["slack"]),
        "customers": SegmentConfig(channels=["email", "push"]),
        "partners": SegmentConfig(channels=["email"]),
        "browsers": SegmentConfig(channels=["push"]),
    }
    assert email_segments(segments) == ["customers", "partners"]
    assert push_segment(segments) == "customers"
    assert push_segment({"ops": SegmentConfig(channels=["slack"])}) is None


def test_component_ids_are_stable_slugs() -> None:
    assert slug("Public API (EU)") == "public-api-eu"
    assert slug("Zürich Datacenter") == "zurich-datacenter"
    assert slug("!!!") == "component"
    assert component_ids(["API", "api", "A.P.I"]) == {"API": "api", "api": "api-2", "A.P.I": "a-p-i"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Someone@Example.COM ", "someone@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("", None),
        ("no-at-sign", None),
        ("two@@example.com", None),
        ("a@b", None),
        ("a b@example.com", None),
        ("<script>@example.com", None),
        ("user@example.com\r\nBcc: x@example.com", None),
        (".dot@example.com", None),
        ("dot..dot@example.com", None),
        ("user@-bad.example", None),
        ("user@1.2.3.4", None),
        ("x" * 65 + "@example.com", None),
    ],
)
def test_normalize_email(text: str, expected: str | None) -> None:
    assert normalize_email(text) == expected


def test_summary_json_has_statuspage_shape() -> None:
    v = view(
        row(1, "investigating", "db slow", impact="major", components=("API",), minutes_ago=5),
        row(2, "investigating", impact="minor", minutes_ago=60 * 24 * 2),
        row(2, "resolved", impact="minor", minutes_ago=60 * 24),
    )
    summary = summary_json(v, "https://status.acme.test/status")
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert summary["page"] == {
        "id": "firebell",
        "name": "Acme",
        "url": "https://status.acme.test/status",
        "time_zone": "Etc/UTC",
        "updated_at": "2026-03-02T11:55:00.000Z",
    }
    assert summary["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert summary["scheduled_maintenances"] == []
    api = summary["components"][0]
    assert {
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "position",
        "description",
        "group",
        "only_show_if_degraded",
        "showcase",
    } <= set(api)
    assert (api["id"], api["name"], api["status"], api["position"]) == ("api", "API", "partial_outage", 1)
    assert (api["group"], api["only_show_if_degraded"], api["showcase"]) == (False, False, True)
    (incident,) = summary["incidents"]  # unresolved only
    assert incident["id"] == "firebell-incident-1"
    assert incident["name"] == "Incident 1"
    assert (incident["status"], incident["impact"]) == ("investigating", "major")
    assert incident["shortlink"] == "https://status.acme.test/status#firebell-incident-1"
    assert incident["resolved_at"] is None
    assert incident["started_at"] == "2026-01-31T12:00:00.000Z"
    (update,) = incident["incident_updates"]
    assert {"id", "status", "body", "created_at", "display_at", "affected_components"} <= set(update)
    assert update["body"] == "db slow"
    assert update["affected_components"] == [
        {"code": "api", "name": "API", "old_status": "operational", "new_status": "partial_outage"}
    ]
    assert [c["id"] for c in incident["components"]] == ["api"]


def test_incidents_json_lists_open_and_resolved_newest_first() -> None:
    v = view(
        row(2, "investigating", minutes_ago=60 * 24 * 2),
        row(2, "resolved", "all good", minutes_ago=60 * 24),
        row(3, "identified", minutes_ago=30),
    )
    listed = incidents_json(v, "http://x/status")["incidents"]
    assert [i["id"] for i in listed] == ["firebell-incident-3", "firebell-incident-2"]
    resolved = listed[1]
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] == "2026-03-01T12:00:00.000Z"
    assert [u["status"] for u in resolved["incident_updates"]] == ["resolved", "investigating"]


def test_atom_feed_one_entry_per_update_newest_first() -> None:
    rows = [
        row(1, "investigating", "a <b>bold</b> & \x07 claim", minutes_ago=30, components=("API",)),
        row(2, "identified", "other", minutes_ago=20),
        row(1, "resolved", "fixed", minutes_ago=10),
    ]
    incidents = feed_incidents(rows, components=COMPONENTS, segments=EVERY)
    body = atom_feed(
        incidents, title="Acme", page_url="http://x/status", feed_url="http://x/status/feed.atom", now=NOW
    )
    root = ElementTree.fromstring(body)
    ns = {"a": ATOM_NS}
    assert root.tag == f"{{{ATOM_NS}}}feed"
    assert root.findtext("a:updated", namespaces=ns) == "2026-03-02T11:50:00.000Z"
    entries = root.findall("a:entry", ns)
    assert [e.findtext("a:title", namespaces=ns) for e in entries] == [
        "Resolved: Incident 1",
        "Identified: Incident 2",
        "Investigating: Incident 1",
    ]
    for entry in entries:
        assert entry.findtext("a:id", namespaces=ns)
        assert entry.findtext("a:updated", namespaces=ns)
    assert len({e.findtext("a:id", namespaces=ns) for e in entries}) == 3
    assert entries[-1].findtext("a:content", namespaces=ns) == "a <b>bold</b> & \ufffd claim"
    assert entries[-1].find("a:content", ns) is not None
    assert entries[-1].find("a:content", ns).get("type") == "text"  # type: ignore[union-attr]
