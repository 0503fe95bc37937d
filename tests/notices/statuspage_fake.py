"""A local stand-in for Atlassian Statuspage's REST API (the part firebell uses).

``FakeStatuspage`` is a real ``aiohttp.web`` server on 127.0.0.1 (port 0) on the
test's own event loop. Like Statuspage it checks ``Authorization: OAuth <key>``,
validates incident and component bodies (unknown keys, statuses, impacts and
component ids are refused with 422), keeps incidents and component statuses,
and records every request in arrival order. Tests can script the next answers
(a 420/429 with ``Retry-After``, a 500, …) and delete incidents behind
firebell's back.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.async_server import AsyncFakeServer

INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved"}
IMPACTS = {"none", "minor", "major", "critical"}
COMPONENT_STATUSES = {
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
}
INCIDENT_KEYS = {
    "name",
    "status",
    "impact_override",
    "body",
    "component_ids",
    "components",
    "deliver_notifications",
}

_INCIDENTS = re.compile(r"^/v1/pages/(?P<page>[^/]+)/incidents$")
_INCIDENT = re.compile(r"^/v1/pages/(?P<page>[^/]+)/incidents/(?P<incident>[^/]+)$")
_COMPONENT = re.compile(r"^/v1/pages/(?P<page>[^/]+)/components/(?P<component>[^/]+)$")


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it (authenticated or not)."""

    seq: int
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Incident:
    id: str
    name: str
    status: str
    impact: str
    component_ids: list[str]
    deliver_notifications: bool
    updates: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "impact": self.impact,
            "components": [{"id": cid} for cid in self.component_ids],
            "incident_updates": list(reversed(self.updates)),
        }


@dataclass
class _Scripted:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


class FakeStatuspage(AsyncFakeServer):
    """Statuspage for one page with the given components (id → status)."""

    def __init__(self, *, page_id: str, api_key: str, components: dict[str, str]) -> None:
        self.page_id = page_id
        self.api_key = api_key
        self.components: dict[str, str] = dict(components)
        self.incidents: dict[str, Incident] = {}
        self.requests: list[Recorded] = []
        self.url = ""
        self._scripted: list[_Scripted] = []
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    # ------------------------------------------------------------------ test controls

    def fail_next(self, status: int, *, retry_after: str | None = None, error: str = "scripted") -> None:
        """Answer the next authenticated request with ``status`` instead (420/429/500 …)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._scripted.append(_Scripted(status, headers, {"error": error}))

    def delete_incident(self, incident_id: str) -> None:
        """As if someone deleted the incident in Statuspage's UI."""
        del self.incidents[incident_id]

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    # ------------------------------------------------------------------ server

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            seq=next(self._seq),
            method=request.method,
            path=request.raw_path.partition("?")[0],
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
        self.requests.append(recorded)
        if recorded.headers.get("authorization") != f"OAuth {self.api_key}":
            return web.json_response({"error": "Could not authenticate"}, status=401)
        if self._scripted:
            s = self._scripted.pop(0)
            return web.json_response(s.body, status=s.status, headers=s.headers)
        try:
            body = recorded.json()
        except ValueError:
            return _error(400, "body is not JSON")
        if (m := _INCIDENTS.match(recorded.path)) and recorded.method == "POST":
            return self._page(m["page"]) or self._create(body)
        if (m := _INCIDENT.match(recorded.path)) and recorded.method == "PATCH":
            return self._page(m["page"]) or self._update(m["incident"], body)
        if (m := _COMPONENT.match(recorded.path)) and recorded.method == "PATCH":
            return self._page(m["page"]) or self._component(m["component"], body)
        return _error(404, "The page you are looking for doesn't exist")

    def _page(self, page_id: str) -> web.Response | None:
        return None if page_id == self.page_id else _error(404, "page not found")

    def _validate(self, body: Any, *, creating: bool) -> str | None:
        if not isinstance(body, dict) or set(body) != {"incident"} or not isinstance(body["incident"], dict):
            return "body must be {'incident': {...}}"
        incident = body["incident"]
        extra = set(incident) - INCIDENT_KEYS
        if extra:
            return f"unknown incident fields: {sorted(extra)}"
        name = incident.get("name")
        if creating and name is None:
            return "name is required"
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 255):
            return "name must be 1..255 characters"
        if "status" in incident and incident["status"] not in INCIDENT_STATUSES:
            return f"bad status {incident['status']!r}"
        if "impact_override" in incident and incident["impact_override"] not in IMPACTS:
            return f"bad impact_override {incident['impact_override']!r}"
        if "body" in incident and not isinstance(incident["body"], str):
            return "body must be a string"
        if "deliver_notifications" in incident and not isinstance(incident["deliver_notifications"], bool):
            return "deliver_notifications must be a boolean"
        ids = incident.get("component_ids", [])
        if not isinstance(ids, list) or any(cid not in self.components for cid in ids):
            return f"unknown component_ids {ids!r}"
        statuses = incident.get("components", {})
        if not isinstance(statuses, dict):
            return "components must be an object"
        for cid, status in statuses.items():
            if cid not in self.components:
                return f"unknown component {cid!r}"
            if status not in COMPONENT_STATUSES:
                return f"bad component status {status!r}"
        return None

    def _apply(self, incident: Incident, fields: dict[str, Any]) -> None:
        incident.name = fields.get("name", incident.name)
        incident.status = fields.get("status", incident.status)
        incident.impact = fields.get("impact_override", incident.impact)
        incident.deliver_notifications = fields.get("deliver_notifications", incident.deliver_notifications)
        if "component_ids" in fields:
            incident.component_ids = list(fields["component_ids"])
        self.components.update(fields.get("components", {}))
        if "body" in fields:
            incident.updates.append({"status": incident.status, "body": fields["body"]})

    def _create(self, body: Any) -> web.Response:
        problem = self._validate(body, creating=True)
        if problem:
            return _error(422, problem)
        fields = body["incident"]
        incident = Incident(
            id=f"sp{next(self._ids):04d}",
            name=fields["name"],
            status=fields.get("status", "investigating"),
            impact=fields.get("impact_override", "none"),
            component_ids=[],
            deliver_notifications=fields.get("deliver_notifications", True),
        )
        self._apply(incident, fields)
        self.incidents[incident.id] = incident
        return web.json_response(incident.to_json(), status=201)

    def _update(self, incident_id: str, body: Any) -> web.Response:
        incident = self.incidents.get(incident_id)
        if incident is None:
            return _error(404, "incident not found")
        problem = self._validate(body, creating=False)
        if problem:
            return _error(422, problem)
        self._apply(incident, body["incident"])
        return web.json_response(incident.to_json())

    def _component(self, component_id: str, body: Any) -> web.Response:
        if component_id not in self.components:
            return _error(404, "component not found")
        component = body.get("component") if isinstance(body, dict) else None
        if not isinstance(component, dict) or component.get("status") not in COMPONENT_STATUSES:
            return _error(422, "component.status must be a component status")
        self.components[component_id] = component["status"]
        return web.json_response({"id": component_id, "status": component["status"]})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
