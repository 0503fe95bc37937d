"""The status page as values: published notices in, what the page shows out.

Pure functions, no I/O: ``status_store`` loads ``NoticeRow`` values, this
module turns them into a ``StatusView`` (component states, the overall
indicator, open and past incidents with their updates) and into the shapes
of Atlassian Statuspage's public API (``/api/v2/summary.json`` and
friends), so widgets and scripts written for a Statuspage page work
against firebell's page too. The Atom feed is built here as well.

An incident on the page is a firebell incident that has at least one
published notice; its status is the status of its latest notice. A notice
with no incident is an incident of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from xml.etree import ElementTree

from bot.notices.config import SegmentConfig
from bot.notices.model import Impact, NoticeStatus

PAST_WINDOW = timedelta(days=14)
"""Resolved incidents stay on the page this long after they were resolved."""
STATUS_PAGE_CHANNEL = "statuspage"
PAGE_ID = "firebell"
TIME_ZONE = "Etc/UTC"
ATOM_NS = "http://www.w3.org/2005/Atom"


class ComponentStatus(StrEnum):
    """Statuspage's component states (``under_maintenance`` is not used)."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"


_IMPACT_ORDER: tuple[Impact, ...] = (Impact.NONE, Impact.MINOR, Impact.MAJOR, Impact.CRITICAL)
_COMPONENT_ORDER: tuple[ComponentStatus, ...] = tuple(ComponentStatus)
_COMPONENT_FOR_IMPACT: dict[Impact, ComponentStatus] = {
    Impact.NONE: ComponentStatus.OPERATIONAL,
    Impact.MINOR: ComponentStatus.DEGRADED_PERFORMANCE,
    Impact.MAJOR: ComponentStatus.PARTIAL_OUTAGE,
    Impact.CRITICAL: ComponentStatus.MAJOR_OUTAGE,
}
_IMPACT_FOR_COMPONENT = {status: impact for impact, status in _COMPONENT_FOR_IMPACT.items()}
_DESCRIPTIONS: dict[Impact, str] = {
    Impact.NONE: "All Systems Operational",
    Impact.MINOR: "Minor Service Outage",
    Impact.MAJOR: "Partial System Outage",
    Impact.CRITICAL: "Major Service Outage",
}
COMPONENT_LABELS: dict[ComponentStatus, str] = {
    ComponentStatus.OPERATIONAL: "Operational",
    ComponentStatus.DEGRADED_PERFORMANCE: "Degraded performance",
    ComponentStatus.PARTIAL_OUTAGE: "Partial outage",
    ComponentStatus.MAJOR_OUTAGE: "Major outage",
}


@dataclass(frozen=True)
class NoticeRow:
    """One published notice as the status page needs it (from ``status_store``)."""

    id: int
    incident_id: int | None
    incident_title: str | None
    incident_opened_at: datetime | None
    status: str
    impact: str
    components: tuple[str, ...]
    message: str
    segments: tuple[str, ...]
    channels: tuple[str, ...]
    published_at: datetime
    """``sent_at``, or ``created_at`` for a notice sent without one."""


@dataclass(frozen=True)
class ComponentView:
    id: str
    name: str
    status: ComponentStatus
    position: int
    updated_at: datetime | None

    @property
    def label(self) -> str:
        return COMPONENT_LABELS[self.status]


@dataclass(frozen=True)
class ComponentChange:
    """One component an update names, with its state before and after (Statuspage's
    ``affected_components``)."""

    id: str
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


@dataclass(frozen=True)
class UpdateView:
    id: str
    notice_id: int
    status: NoticeStatus
    impact: Impact
    body: str
    at: datetime
    components: tuple[ComponentChange, ...]


@dataclass(frozen=True)
class PageIncident:
    id: str
    number: int | None
    """The firebell incident number; ``None`` for a notice without an incident."""
    name: str
    status: NoticeStatus
    impact: Impact
    """The highest impact any update gave (Statuspage keeps an incident's impact)."""
    current_impact: Impact
    """The latest update's impact: what the components show now."""
    components: tuple[str, ...]
    """Every component an update named, in first-named order."""
    started_at: datetime
    created_at: datetime
    updated_at: datetime
    monitoring_at: datetime | None
    resolved_at: datetime | None
    updates: tuple[UpdateView, ...]
    """Newest first."""

    @property
    def open(self) -> bool:
        return self.status is not NoticeStatus.RESOLVED


@dataclass(frozen=True)
class PageStatus:
    indicator: Impact
    description: str


@dataclass(frozen=True)
class StatusView:
    title: str
    status: PageStatus
    components: tuple[ComponentView, ...]
    open_incidents: tuple[PageIncident, ...]
    """Newest first."""
    past_incidents: tuple[PageIncident, ...]
    """Resolved within the window, most recently resolved first."""
    updated_at: datetime
    """The latest update on the page, or ``now`` for a page without any."""


# ---------------------------------------------------------------- identifiers


def slug(name: str) -> str:
    """``"Public API (EU)"`` → ``"public-api-eu"``; ASCII letters, digits and dashes."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-") or "component"


def component_ids(names: Iterable[str]) -> dict[str, str]:
    """Stable ids for component names: their slug, with ``-2``, ``-3`` … on a clash."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        if name in ids:
            continue
        base = slug(name)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        taken.add(candidate)
        ids[name] = candidate
    return ids


def incident_id(row: NoticeRow) -> str:
    return (
        f"firebell-incident-{row.incident_id}" if row.incident_id is not None else f"firebell-notice-{row.id}"
    )


def update_id(row: NoticeRow) -> str:
    return f"firebell-notice-{row.id}"


# ---------------------------------------------------------------- which notices


def visible_on_status_page(row: NoticeRow, segments: Mapping[str, SegmentConfig]) -> bool:
    """Whether a published notice belongs on the public page.

    It does when one of the segments it went to (none named: every segment)
    uses the ``statuspage`` channel, and the notice was not limited to
    channels that leave the page out. A notice sent with ``--channel email``
    only stays in the mailboxes.
    """
    if row.channels and STATUS_PAGE_CHANNEL not in row.channels:
        return False
    if not segments:
        return True
    targets = row.segments or tuple(segments)
    return any(name in segments and STATUS_PAGE_CHANNEL in segments[name].channels for name in targets)


def email_segments(segments: Mapping[str, SegmentConfig]) -> list[str]:
    """The segments a visitor may subscribe to by email, in configured order."""
    return [name for name, config in segments.items() if "email" in config.channels]


def push_segment(segments: Mapping[str, SegmentConfig]) -> str | None:
    """The segment browser push subscriptions join: the first that uses push."""
    return next((name for name, config in segments.items() if "push" in config.channels), None)


_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_email(text: str) -> str | None:
    """A plausible address, trimmed and lowercased; ``None`` when it is not one.

    Deliberately plain (no quoted local parts, no IP literals): what a
    subscribe form should accept, not everything RFC 5321 allows.
    """
    address = text.strip().lower()
    if not address or len(address) > 254 or address.count("@") != 1:
        return None
    local, domain = address.split("@")
    if not local or len(local) > 64 or not _EMAIL_LOCAL.match(local):
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return f"{local}@{domain}"


# ---------------------------------------------------------------- the view


def _impact(value: str) -> Impact:
    try:
        return Impact(value)
    except ValueError:
        return Impact.MINOR


def _status(value: str) -> NoticeStatus:
    try:
        return NoticeStatus(value)
    except ValueError:
        return NoticeStatus.INVESTIGATING


def _max_impact(impacts: Iterable[Impact]) -> Impact:
    return max(impacts, key=_IMPACT_ORDER.index, default=Impact.NONE)


def component_status_for(status: NoticeStatus, impact: Impact) -> ComponentStatus:
    """What a component named by an update shows while that update is the latest."""
    if status is NoticeStatus.RESOLVED:
        return ComponentStatus.OPERATIONAL
    return _COMPONENT_FOR_IMPACT[impact]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def group_incidents(rows: Iterable[NoticeRow], ids: Mapping[str, str]) -> list[PageIncident]:
    """Published notices grouped into page incidents (any order in, newest-created first out).

    ``ids`` maps component names to their ids; a name missing there gets its slug.
    """
    groups: dict[str, list[NoticeRow]] = {}
    for row in rows:
        groups.setdefault(incident_id(row), []).append(row)
    incidents: list[PageIncident] = []
    for key, members in groups.items():
        members.sort(key=lambda r: (r.published_at, r.id))
        updates: list[UpdateView] = []
        previous: dict[str, ComponentStatus] = {}
        for row in members:
            status, impact = _status(row.status), _impact(row.impact)
            new = component_status_for(status, impact)
            changes = tuple(
                ComponentChange(
                    ids.get(name) or slug(name), name, previous.get(name, ComponentStatus.OPERATIONAL), new
                )
                for name in _unique(row.components)
            )
            previous.update({change.name: new for change in changes})
            updates.append(
                UpdateView(update_id(row), row.id, status, impact, row.message, row.published_at, changes)
            )
        first, last = members[0], members[-1]
        status = _status(last.status)
        monitoring = [u.at for u in updates if u.status is NoticeStatus.MONITORING]
        incidents.append(
            PageIncident(
                id=key,
                number=last.incident_id,
                name=_incident_name(last),
                status=status,
                impact=_max_impact(u.impact for u in updates),
                current_impact=_impact(last.impact),
                components=_unique(name for row in members for name in row.components),
                started_at=first.incident_opened_at or first.published_at,
                created_at=first.published_at,
                updated_at=last.published_at,
                monitoring_at=monitoring[-1] if monitoring else None,
                resolved_at=last.published_at if status is NoticeStatus.RESOLVED else None,
                updates=tuple(reversed(updates)),
            )
        )
    incidents.sort(key=lambda i: (i.created_at, i.id), reverse=True)
    return incidents


def _incident_name(row: NoticeRow) -> str:
    if row.incident_title:
        return row.incident_title
    first_line = row.message.strip().splitlines()[0] if row.message.strip() else "Service notice"
    return first_line if len(first_line) <= 80 else first_line[:79] + "…"


def overall_status(incidents: Iterable[PageIncident], components: Iterable[ComponentView]) -> PageStatus:
    """Statuspage's page indicator: the worst of the open incidents' current
    impact and the components' states."""
    impacts = [i.current_impact for i in incidents if i.open]
    impacts.extend(_IMPACT_FOR_COMPONENT[c.status] for c in components)
    indicator = _max_impact(impacts)
    return PageStatus(indicator, _DESCRIPTIONS[indicator])


def build_status_view(
    rows: Iterable[NoticeRow],
    *,
    components: Sequence[str],
    segments: Mapping[str, SegmentConfig],
    title: str,
    now: datetime,
    past_window: timedelta = PAST_WINDOW,
) -> StatusView:
    """Everything the status page shows, from the published notices ``status_store`` loaded.

    ``components`` are the configured ones, in page order; a component an open
    incident names that is not configured is listed after them, so an outage
    is never hidden by a typo in the configuration.
    """
    cutoff = now - past_window
    shown = [row for row in rows if visible_on_status_page(row, segments)]
    configured = list(_unique(components))
    # Configured names first, so their ids never depend on what notices name.
    ids = component_ids([*configured, *(name for row in shown for name in row.components)])
    incidents = group_incidents(shown, ids)
    open_incidents = [i for i in incidents if i.open and (i.number is not None or i.updated_at >= cutoff)]
    names = configured + [
        name for name in _unique(n for i in open_incidents for n in i.components) if name not in configured
    ]
    past = [i for i in incidents if i.resolved_at is not None and i.resolved_at >= cutoff]
    past.sort(key=lambda i: (i.resolved_at or i.updated_at, i.id), reverse=True)

    states: dict[str, ComponentStatus] = {}
    touched: dict[str, datetime] = {}
    for incident in open_incidents:
        latest = incident.updates[0]
        state = component_status_for(latest.status, latest.impact)
        for change in latest.components:
            current = states.get(change.name, ComponentStatus.OPERATIONAL)
            states[change.name] = max(current, state, key=_COMPONENT_ORDER.index)
    for incident in incidents:
        for update in incident.updates:
            for change in update.components:
                if change.name not in touched or update.at > touched[change.name]:
                    touched[change.name] = update.at
    views = tuple(
        ComponentView(
            ids[name], name, states.get(name, ComponentStatus.OPERATIONAL), position, touched.get(name)
        )
        for position, name in enumerate(names, start=1)
    )
    updated_at = max((i.updated_at for i in incidents), default=now)
    return StatusView(
        title=title,
        status=overall_status(open_incidents, views),
        components=views,
        open_incidents=tuple(open_incidents),
        past_incidents=tuple(past),
        updated_at=updated_at,
    )


def feed_incidents(
    rows: Iterable[NoticeRow], *, components: Sequence[str], segments: Mapping[str, SegmentConfig]
) -> list[PageIncident]:
    """Every incident the rows make, open or resolved however long ago (for the feed)."""
    shown = [row for row in rows if visible_on_status_page(row, segments)]
    ids = component_ids([*_unique(components), *(name for row in shown for name in row.components)])
    return group_incidents(shown, ids)


# ---------------------------------------------------------------- Statuspage JSON


def iso(moment: datetime | None) -> str | None:
    """Statuspage's timestamp form: UTC, milliseconds, ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_json(view: StatusView, page_url: str) -> dict[str, Any]:
    return {
        "id": PAGE_ID,
        "name": view.title,
        "url": page_url,
        "time_zone": TIME_ZONE,
        "updated_at": iso(view.updated_at),
    }


def _component_json(component: ComponentView, view: StatusView) -> dict[str, Any]:
    moment = iso(component.updated_at or view.updated_at)
    return {
        "id": component.id,
        "name": component.name,
        "status": str(component.status),
        "created_at": moment,
        "updated_at": moment,
        "position": component.position,
        "description": None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": PAGE_ID,
        "group": False,
        "only_show_if_degraded": False,
    }


def _incident_json(incident: PageIncident, view: StatusView, page_url: str) -> dict[str, Any]:
    by_name = {c.name: c for c in view.components}
    return {
        "id": incident.id,
        "name": incident.name,
        "status": str(incident.status),
        "created_at": iso(incident.created_at),
        "updated_at": iso(incident.updated_at),
        "monitoring_at": iso(incident.monitoring_at),
        "resolved_at": iso(incident.resolved_at),
        "impact": str(incident.impact),
        "shortlink": f"{page_url}#{incident.id}",
        "started_at": iso(incident.started_at),
        "page_id": PAGE_ID,
        "incident_updates": [
            {
                "id": update.id,
                "status": str(update.status),
                "body": update.body,
                "incident_id": incident.id,
                "created_at": iso(update.at),
                "updated_at": iso(update.at),
                "display_at": iso(update.at),
                "affected_components": [
                    {
                        "code": change.id,
                        "name": change.name,
                        "old_status": str(change.old_status),
                        "new_status": str(change.new_status),
                    }
                    for change in update.components
                ],
                "deliver_notifications": True,
            }
            for update in incident.updates
        ],
        "components": [
            _component_json(by_name[name], view) for name in incident.components if name in by_name
        ],
    }


def status_json(view: StatusView, page_url: str) -> dict[str, Any]:
    """``/api/v2/status.json``."""
    return {
        "page": page_json(view, page_url),
        "status": {"indicator": str(view.status.indicator), "description": view.status.description},
    }


def components_json(view: StatusView, page_url: str) -> dict[str, Any]:
    """``/api/v2/components.json``."""
    return {
        "page": page_json(view, page_url),
        "components": [_component_json(c, view) for c in view.components],
    }


def summary_json(view: StatusView, page_url: str) -> dict[str, Any]:
    """``/api/v2/summary.json``: page, components, unresolved incidents, status."""
    return {
        "page": page_json(view, page_url),
        "components": [_component_json(c, view) for c in view.components],
        "incidents": [_incident_json(i, view, page_url) for i in view.open_incidents],
        "scheduled_maintenances": [],
        "status": {"indicator": str(view.status.indicator), "description": view.status.description},
    }


def incidents_json(view: StatusView, page_url: str, limit: int = 50) -> dict[str, Any]:
    """``/api/v2/incidents.json``: the most recent incidents, open and resolved, newest first."""
    recent = sorted(
        (*view.open_incidents, *view.past_incidents), key=lambda i: (i.created_at, i.id), reverse=True
    )
    return {
        "page": page_json(view, page_url),
        "incidents": [_incident_json(i, view, page_url) for i in recent[:limit]],
    }


def unresolved_incidents_json(view: StatusView, page_url: str) -> dict[str, Any]:
    """``/api/v2/incidents/unresolved.json``."""
    return {
        "page": page_json(view, page_url),
        "incidents": [_incident_json(i, view, page_url) for i in view.open_incidents],
    }


# ---------------------------------------------------------------- Atom


STATUS_LABELS: dict[NoticeStatus, str] = {
    NoticeStatus.INVESTIGATING: "Investigating",
    NoticeStatus.IDENTIFIED: "Identified",
    NoticeStatus.MONITORING: "Monitoring",
    NoticeStatus.RESOLVED: "Resolved",
}


def atom_feed(
    incidents: Iterable[PageIncident],
    *,
    title: str,
    page_url: str,
    feed_url: str,
    now: datetime,
    limit: int = 50,
) -> bytes:
    """An Atom 1.0 feed (RFC 4287): one entry per update, newest first."""
    entries = sorted(
        ((incident, update) for incident in incidents for update in incident.updates),
        key=lambda pair: (pair[1].at, pair[1].notice_id),
        reverse=True,
    )[:limit]
    ElementTree.register_namespace("", ATOM_NS)

    def sub(
        parent: ElementTree.Element, tag: str, text: str | None = None, **attrs: str
    ) -> ElementTree.Element:
        element = ElementTree.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = _clean_xml_text(text)
        return element

    feed = ElementTree.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", feed_url)
    sub(feed, "title", title)
    sub(feed, "updated", iso(entries[0][1].at if entries else now))
    sub(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    sub(feed, "link", rel="alternate", type="text/html", href=page_url)
    author = sub(feed, "author")
    sub(author, "name", title)
    sub(feed, "generator", "firebell")
    for incident, update in entries:
        entry = sub(feed, "entry")
        sub(entry, "id", f"{page_url}#{update.id}")
        sub(entry, "title", f"{STATUS_LABELS[update.status]}: {incident.name}")
        sub(entry, "updated", iso(update.at))
        sub(entry, "published", iso(update.at))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{page_url}#{incident.id}")
        for change in update.components:
            sub(entry, "category", term=change.id, label=change.name)
        sub(entry, "content", update.body, type="text")
    body: bytes = ElementTree.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean_xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters, even escaped."""
    return _XML_INVALID.sub("\ufffd", text)
