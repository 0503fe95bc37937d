"""A fake PagerDuty REST API v2 for tests and benchmarks.

It serves HTTPS (the official ``pagerduty`` client refuses a base URL that is
not ``https://``), so build it with TLS material from :func:`tests.fakes.tls.make_tls`
and give the client a context that trusts the fake CA::

    fake = FakePagerDuty(tls=tls)
    client = pagerduty.RestApiV2Client("pd-test-token", default_from="ic@example.com",
                                       base_url=fake.url, verify=tls.client_context())

Wire format as in PagerDuty's API reference: ``Authorization: Token
token=<key>``, wrapped entities (``{"incident": {...}}``, ``{"oncalls": [...]}``),
classic pagination fields (``limit``, ``offset``, ``more``, ``total``), set
filters with ``[]`` names (``escalation_policy_ids[]``, ``include[]``), and
errors as ``{"error": {"message": ..., "code": ..., "errors": [...]}}``.  Write
requests (``POST /incidents``, ``PUT /incidents/{id}``, ``POST /incidents/{id}/notes``)
require a ``From`` header holding a known user's email.

Endpoints: ``GET /oncalls``, ``GET /users``, ``GET /users/{id}``, ``GET /priorities``,
``GET|POST /incidents``, ``GET|PUT /incidents/{id}``, ``GET|POST /incidents/{id}/notes``,
``GET /abilities``, ``GET /abilities/{name}``.

As in the real API:

* ``GET /priorities`` answers 404 when the account has no priorities
  (``priorities_enabled=False``);
* ``PUT /incidents/{id}`` takes ``status``, ``title``, ``urgency``, ``priority``
  (a priority reference), ``escalation_level`` (reassigns the incident to whoever
  is on call at that level of its policy; a level above the policy's last
  level with someone on call is refused) or ``assignments`` (replaces the
  assignees; not together with ``escalation_level``);
* ``POST /incidents`` needs a known service (:meth:`FakePagerDuty.add_service`)
  and refuses a second *open* incident with the same ``incident_key`` on that
  service (400, "Open incident with matching dedup key already exists on this
  service");
* the incident object does not carry its escalation level (PagerDuty's does
  not either); :meth:`FakePagerDuty.incident_state` does.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .base import FakeServer, RecordedRequest, json_response
from .tls import TlsMaterial

__all__ = ["FakePagerDuty", "PdIncident", "PdOncall", "PdUser"]

_ERR_INVALID = 2001
_ERR_AUTH = 2006
_ERR_FROM = 2016
_ERR_NOT_FOUND = 2100
_ERR_RATE = 2020

_DEFAULT_ABILITIES = ("teams", "read_only_users", "urgencies", "response_operations")
_DEFAULT_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
_DEDUP_REJECTED = "Open incident with matching dedup key already exists on this service"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PdUser:
    """A PagerDuty user."""

    id: str
    name: str
    email: str
    time_zone: str = "Etc/UTC"
    role: str = "user"


@dataclass
class PdOncall:
    """One on-call entry: a user at a level of an escalation policy."""

    escalation_policy_id: str
    user_id: str
    level: int = 1
    schedule_id: str | None = None


@dataclass
class PdIncident:
    """An incident and what happened to it."""

    id: str
    number: int
    title: str
    status: str
    urgency: str
    service_id: str
    escalation_policy_id: str
    incident_key: str | None
    created_at: str
    last_status_change_at: str
    last_status_change_by: str | None = None
    """User id of the last status change (None: the service)."""
    acknowledgements: list[tuple[str, str]] = field(default_factory=list)
    """(user id, ISO time) per acknowledgement."""
    assignments: list[str] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    status_changes: list[tuple[str, str]] = field(default_factory=list)
    """(new status, From email) per status change made through the API."""
    resolution: str | None = None
    priority: str | None = None
    """Name of the incident's priority (``"P1"`` ...), or None."""
    escalation_level: int = 1
    assigned_via: str = "escalation_policy"
    details: str | None = None
    """``body.details`` given when the incident was created through the API."""
    created_by: str | None = None
    """From email of ``POST /incidents`` (None: seeded with :meth:`FakePagerDuty.add_incident`)."""
    updates: list[tuple[str, Any, str]] = field(default_factory=list)
    """(field, new value, From email) per ``priority``, ``escalation_level`` or
    ``assignments`` change made through the API (assignments as user emails)."""


class _PdError(Exception):
    def __init__(self, status: int, message: str, code: int, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.errors = errors


class FakePagerDuty(FakeServer):
    """PagerDuty REST API v2 at :attr:`url` (HTTPS), with users, on-calls and incidents."""

    def __init__(
        self,
        api_token: str = "pd-test-token",
        *,
        tls: TlsMaterial | None,
        latency: float = 0.0,
        allow_http: bool = False,
        abilities: Iterable[str] = _DEFAULT_ABILITIES,
        priorities: Iterable[str] = _DEFAULT_PRIORITIES,
        priorities_enabled: bool = True,
    ) -> None:
        if tls is None and not allow_http:
            raise ValueError(
                "FakePagerDuty needs TLS material (the pagerduty client only speaks https); "
                "pass allow_http=True to opt out"
            )
        super().__init__(tls=tls, latency=latency)
        self.api_token = api_token
        """The token the ``Authorization: Token token=...`` header must carry."""
        self.abilities = list(abilities)
        self.priorities_enabled = priorities_enabled
        """False: the account has no priorities feature (``GET /priorities`` answers 404)."""
        self._ids = itertools.count(1)
        self._priorities: dict[str, str] = {
            f"PPRIO{position:02X}": name for position, name in enumerate(priorities, start=1)
        }
        self._users: dict[str, PdUser] = {}
        self._policies: dict[str, str] = {}
        self._services: dict[str, str] = {}
        self._service_policies: dict[str, str] = {}
        self._oncalls: list[PdOncall] = []
        self._incidents: dict[str, PdIncident] = {}
        self._incident_numbers = itertools.count(1)

    # ------------------------------------------------------------------ seeding

    def add_user(self, email: str, name: str, *, time_zone: str = "Etc/UTC", role: str = "user") -> str:
        """Add a user; returns its id."""
        with self._lock:
            user_id = self._new_id("U")
            self._users[user_id] = PdUser(id=user_id, name=name, email=email, time_zone=time_zone, role=role)
            return user_id

    def add_escalation_policy(self, escalation_policy_id: str, name: str | None = None) -> str:
        """Name an escalation policy (policies are also created on first use)."""
        with self._lock:
            self._policies[escalation_policy_id] = name or f"Escalation policy {escalation_policy_id}"
            return escalation_policy_id

    def add_service(
        self, service_id: str, name: str | None = None, *, escalation_policy_id: str = "PPOLICY"
    ) -> str:
        """Add a service (incidents created on it follow *escalation_policy_id*)."""
        with self._lock:
            self._services[service_id] = name or f"Service {service_id}"
            self._service_policies[service_id] = escalation_policy_id
            self._policies.setdefault(escalation_policy_id, f"Escalation policy {escalation_policy_id}")
            return service_id

    def add_oncall(
        self,
        escalation_policy_id: str,
        email: str,
        level: int = 1,
        *,
        schedule_id: str | None = None,
    ) -> None:
        """Put the user with *email* on call (the user is created when unknown)."""
        with self._lock:
            user = self._user_by_email(email)
            user_id = (
                user.id
                if user is not None
                else self.add_user(email, email.split("@", 1)[0].replace(".", " ").title())
            )
            self._policies.setdefault(escalation_policy_id, f"Escalation policy {escalation_policy_id}")
            self._oncalls.append(
                PdOncall(
                    escalation_policy_id=escalation_policy_id,
                    user_id=user_id,
                    level=level,
                    schedule_id=schedule_id,
                )
            )

    def clear_oncalls(self, escalation_policy_id: str | None = None) -> None:
        """Remove every on-call entry (of one policy, or all)."""
        with self._lock:
            self._oncalls = [
                entry
                for entry in self._oncalls
                if escalation_policy_id is not None and entry.escalation_policy_id != escalation_policy_id
            ]

    def add_incident(
        self,
        incident_id: str,
        status: str = "triggered",
        *,
        title: str = "Test incident",
        urgency: str = "high",
        service_id: str = "PSERVICE",
        escalation_policy_id: str = "PPOLICY",
        incident_key: str | None = None,
        assignee_emails: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Add an incident; returns it as the API would."""
        if status not in {"triggered", "acknowledged", "resolved"}:
            raise ValueError(f"bad incident status {status!r}")
        with self._lock:
            now = _now_iso()
            self._policies.setdefault(escalation_policy_id, f"Escalation policy {escalation_policy_id}")
            self._services.setdefault(service_id, f"Service {service_id}")
            self._service_policies.setdefault(service_id, escalation_policy_id)
            assignees: list[str] = []
            for email in assignee_emails:
                user = self._user_by_email(email)
                assignees.append(user.id if user is not None else self.add_user(email, email))
            incident = PdIncident(
                id=incident_id,
                number=next(self._incident_numbers),
                title=title,
                status=status,
                urgency=urgency,
                service_id=service_id,
                escalation_policy_id=escalation_policy_id,
                incident_key=incident_key,
                created_at=now,
                last_status_change_at=now,
                assignments=assignees if status != "resolved" else [],
            )
            self._incidents[incident_id] = incident
            return self._incident_api(incident)

    # ------------------------------------------------------------------ assertion helpers

    @property
    def users(self) -> list[PdUser]:
        """Snapshot of every user."""
        with self._lock:
            return [copy.deepcopy(user) for user in self._users.values()]

    @property
    def oncalls(self) -> list[PdOncall]:
        """Snapshot of every on-call entry."""
        with self._lock:
            return [copy.deepcopy(entry) for entry in self._oncalls]

    def incident(self, incident_id: str) -> dict[str, Any]:
        """The incident as ``GET /incidents/{id}`` would return it (KeyError when unknown)."""
        with self._lock:
            return self._incident_api(self._incidents[incident_id])

    def incident_state(self, incident_id: str) -> PdIncident:
        """Snapshot of the incident record, including notes and status changes."""
        with self._lock:
            return copy.deepcopy(self._incidents[incident_id])

    def incident_by_key(self, incident_key: str) -> PdIncident | None:
        """Snapshot of the newest incident with *incident_key*, or None."""
        with self._lock:
            found = [i for i in self._incidents.values() if i.incident_key == incident_key]
            return copy.deepcopy(found[-1]) if found else None

    @property
    def priorities(self) -> dict[str, str]:
        """Priority id -> name, in order (most to least severe)."""
        with self._lock:
            return dict(self._priorities)

    def notes(self, incident_id: str) -> list[dict[str, Any]]:
        """Notes added to an incident, oldest first."""
        with self._lock:
            return copy.deepcopy(self._incidents[incident_id].notes)

    # ------------------------------------------------------------------ FakeServer hooks

    def _default_fault_body(self, status: int) -> dict[str, Any]:
        if status == 429:
            return {"error": {"message": "Rate Limit Exceeded", "code": _ERR_RATE}}
        if status == 401:
            return {"error": {"message": "Authentication failed", "code": _ERR_AUTH}}
        if status == 404:
            return {"error": {"message": "Not Found", "code": _ERR_NOT_FOUND}}
        if status >= 500:
            return {"error": {"message": "Internal Server Error", "code": 2000}}
        return {"error": {"message": "Invalid Input Provided", "code": _ERR_INVALID}}

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return self._route(request)
        except _PdError as exc:
            error: dict[str, Any] = {"message": exc.message, "code": exc.code}
            if exc.errors:
                error["errors"] = exc.errors
            return json_response({"error": error}, status=exc.status)

    # ------------------------------------------------------------------ plumbing

    def _new_id(self, kind: str) -> str:
        return f"P{kind}{next(self._ids):05X}"

    def _user_by_email(self, email: str) -> PdUser | None:
        wanted = email.strip().lower()
        for user in self._users.values():
            if user.email.lower() == wanted:
                return user
        return None

    def _authenticate(self, request: RecordedRequest) -> None:
        header = request.headers.get("Authorization")
        token: str | None = None
        if isinstance(header, str):
            scheme, _, rest = header.strip().partition(" ")
            if scheme.lower() == "token" and rest.startswith("token="):
                token = rest[len("token=") :]
        if token != self.api_token:
            raise _PdError(401, "Authentication failed", _ERR_AUTH)

    def _requester(self, request: RecordedRequest) -> PdUser:
        email = request.headers.get("From")
        if not isinstance(email, str) or not email.strip():
            raise _PdError(
                400,
                'You must specify a user\'s email address in the "From" header to perform this action',
                _ERR_FROM,
            )
        user = self._user_by_email(email)
        if user is None:
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Requester User Not Found"])
        return user

    def _route(self, request: RecordedRequest) -> web.StreamResponse:
        parts = [part for part in request.path.split("/") if part]
        method = request.method
        if parts == ["oncalls"] and method == "GET":
            return json_response(self._list_oncalls(request))
        if parts == ["users"] and method == "GET":
            return json_response(self._list_users(request))
        if len(parts) == 2 and parts[0] == "users" and method == "GET":
            user = self._users.get(parts[1])
            if user is None:
                raise _PdError(404, "Not Found", _ERR_NOT_FOUND)
            return json_response({"user": self._user_api(user)})
        if parts == ["priorities"] and method == "GET":
            if not self.priorities_enabled:
                raise _PdError(404, "Not Found", _ERR_NOT_FOUND)
            return json_response(self._page(request, "priorities", self._priorities_api()))
        if parts == ["incidents"] and method == "GET":
            return json_response(self._list_incidents(request))
        if parts == ["incidents"] and method == "POST":
            return json_response({"incident": self._create_incident(request)}, status=201)
        if len(parts) >= 2 and parts[0] == "incidents":
            incident = self._incidents.get(parts[1])
            if incident is None:
                raise _PdError(404, "Not Found", _ERR_NOT_FOUND)
            if len(parts) == 2 and method == "GET":
                return json_response({"incident": self._incident_api(incident)})
            if len(parts) == 2 and method == "PUT":
                return json_response({"incident": self._update_incident(request, incident)})
            if parts[2:] == ["notes"] and method == "GET":
                return json_response({"notes": copy.deepcopy(incident.notes)})
            if parts[2:] == ["notes"] and method == "POST":
                return json_response({"note": self._add_note(request, incident)}, status=201)
        if parts == ["abilities"] and method == "GET":
            return json_response({"abilities": list(self.abilities)})
        if len(parts) == 2 and parts[0] == "abilities" and method == "GET":
            if parts[1] in self.abilities:
                return web.Response(status=204)
            return json_response(
                {
                    "error": {
                        "message": "Account does not have the abilities to perform the action",
                        "code": 2012,
                    }
                },
                status=402,
            )
        raise _PdError(404, "Not Found", _ERR_NOT_FOUND)

    def _ref(self, kind: str, collection: str, item_id: str, summary: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "type": f"{kind}_reference",
            "summary": summary,
            "self": f"{self.url}/{collection}/{item_id}",
            "html_url": f"{self.url}/{collection}/{item_id}",
        }

    def _user_api(self, user: PdUser) -> dict[str, Any]:
        return {
            "id": user.id,
            "type": "user",
            "summary": user.name,
            "self": f"{self.url}/users/{user.id}",
            "html_url": f"{self.url}/users/{user.id}",
            "name": user.name,
            "email": user.email,
            "time_zone": user.time_zone,
            "color": "purple",
            "role": user.role,
            "avatar_url": "",
            "description": "",
            "invitation_sent": False,
            "job_title": "",
            "teams": [],
            "contact_methods": [],
            "notification_rules": [],
        }

    def _user_ref(self, user_id: str) -> dict[str, Any]:
        user = self._users[user_id]
        return self._ref("user", "users", user.id, user.name)

    def _policy_ref(self, policy_id: str) -> dict[str, Any]:
        return self._ref(
            "escalation_policy", "escalation_policies", policy_id, self._policies.get(policy_id, policy_id)
        )

    @staticmethod
    def _page(request: RecordedRequest, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            limit = max(1, min(100, int(request.query.get("limit", "25"))))
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError as exc:
            raise _PdError(
                400, "Invalid Input Provided", _ERR_INVALID, ["limit and offset must be integers"]
            ) from exc
        want_total = request.query.get("total", "false").lower() == "true"
        page = items[offset : offset + limit]
        return {
            key: page,
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(items),
            "total": len(items) if want_total else None,
        }

    @staticmethod
    def _set_filter(request: RecordedRequest, name: str) -> list[str]:
        values = request.query_all.get(f"{name}[]", []) + request.query_all.get(name, [])
        return [value for item in values for value in item.split(",") if value]

    # ------------------------------------------------------------------ endpoints

    def _list_oncalls(self, request: RecordedRequest) -> dict[str, Any]:
        policy_ids = set(self._set_filter(request, "escalation_policy_ids"))
        user_ids = set(self._set_filter(request, "user_ids"))
        schedule_ids = set(self._set_filter(request, "schedule_ids"))
        include = set(self._set_filter(request, "include"))
        items: list[dict[str, Any]] = []
        for entry in self._oncalls:
            if policy_ids and entry.escalation_policy_id not in policy_ids:
                continue
            if user_ids and entry.user_id not in user_ids:
                continue
            if schedule_ids and entry.schedule_id not in schedule_ids:
                continue
            user = self._users[entry.user_id]
            policy = self._policy_ref(entry.escalation_policy_id)
            if "escalation_policies" in include:
                policy = {**policy, "type": "escalation_policy", "name": policy["summary"]}
            items.append(
                {
                    "escalation_policy": policy,
                    "escalation_level": entry.level,
                    "schedule": (
                        self._ref("schedule", "schedules", entry.schedule_id, entry.schedule_id)
                        if entry.schedule_id
                        else None
                    ),
                    "user": self._user_api(user) if "users" in include else self._user_ref(user.id),
                    "start": None,
                    "end": None,
                }
            )
        items.sort(key=lambda item: int(item["escalation_level"]))
        return self._page(request, "oncalls", items)

    def _list_users(self, request: RecordedRequest) -> dict[str, Any]:
        query = request.query.get("query", "").strip().lower()
        users = [
            self._user_api(user)
            for user in self._users.values()
            if not query or query in user.email.lower() or query in user.name.lower()
        ]
        return self._page(request, "users", users)

    def _list_incidents(self, request: RecordedRequest) -> dict[str, Any]:
        statuses = set(self._set_filter(request, "statuses"))
        service_ids = set(self._set_filter(request, "service_ids"))
        incident_key = request.query.get("incident_key")
        incidents = [
            self._incident_api(incident)
            for incident in self._incidents.values()
            if (not statuses or incident.status in statuses)
            and (not service_ids or incident.service_id in service_ids)
            and (incident_key is None or incident.incident_key == incident_key)
        ]
        return self._page(request, "incidents", incidents)

    def _priorities_api(self) -> list[dict[str, Any]]:
        return [
            {
                **self._ref("priority", "priorities", priority_id, name),
                "type": "priority",
                "name": name,
                "description": f"{name} incidents",
                "order": 100 * (position + 1),
                "color": "a8171c",
            }
            for position, (priority_id, name) in enumerate(self._priorities.items())
        ]

    def _priority_ref(self, name: str | None) -> dict[str, Any] | None:
        priority_id = next((pid for pid, pname in self._priorities.items() if pname == name), None)
        if name is None or priority_id is None:
            return None
        return {**self._ref("priority", "priorities", priority_id, name), "type": "priority_reference"}

    def _incident_api(self, incident: PdIncident) -> dict[str, Any]:
        body = (
            {"body": {"type": "incident_body", "details": incident.details}}
            if incident.details is not None
            else {}
        )
        return {
            **body,
            "id": incident.id,
            "type": "incident",
            "summary": f"[#{incident.number}] {incident.title}",
            "self": f"{self.url}/incidents/{incident.id}",
            "html_url": f"{self.url}/incidents/{incident.id}",
            "incident_number": incident.number,
            "title": incident.title,
            "description": incident.title,
            "status": incident.status,
            "urgency": incident.urgency,
            "incident_key": incident.incident_key,
            "created_at": incident.created_at,
            "updated_at": incident.last_status_change_at,
            "last_status_change_at": incident.last_status_change_at,
            "last_status_change_by": (
                self._user_ref(incident.last_status_change_by)
                if incident.last_status_change_by
                else self._ref(
                    "service",
                    "services",
                    incident.service_id,
                    self._services.get(incident.service_id, incident.service_id),
                )
            ),
            "service": self._ref(
                "service",
                "services",
                incident.service_id,
                self._services.get(incident.service_id, incident.service_id),
            ),
            "escalation_policy": self._policy_ref(incident.escalation_policy_id),
            "priority": self._priority_ref(incident.priority),
            "assigned_via": incident.assigned_via,
            "assignments": [
                {"at": incident.created_at, "assignee": self._user_ref(user_id)}
                for user_id in incident.assignments
            ],
            "acknowledgements": [
                {"at": at, "acknowledger": self._user_ref(user_id)}
                for user_id, at in incident.acknowledgements
            ],
            "resolve_reason": None,
            "teams": [],
            "pending_actions": [],
            "alert_counts": {
                "all": 1,
                "triggered": int(incident.status != "resolved"),
                "resolved": int(incident.status == "resolved"),
            },
        }

    def _update_incident(self, request: RecordedRequest, incident: PdIncident) -> dict[str, Any]:
        requester = self._requester(request)
        wrapped = request.body.get("incident")
        if not isinstance(wrapped, dict):
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Incident must be provided"])
        if wrapped.get("type") not in {"incident", "incident_reference"}:
            raise _PdError(
                400,
                "Invalid Input Provided",
                _ERR_INVALID,
                ["Incident type must be incident or incident_reference"],
            )
        status = wrapped.get("status")
        if status is not None:
            if status not in {"acknowledged", "resolved"}:
                raise _PdError(
                    400,
                    "Invalid Input Provided",
                    _ERR_INVALID,
                    ["Status must be one of acknowledged, resolved"],
                )
            if incident.status == "resolved":
                raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Incident Already Resolved"])
            now = _now_iso()
            incident.status = str(status)
            incident.last_status_change_at = now
            incident.last_status_change_by = requester.id
            incident.status_changes.append((str(status), requester.email))
            if status == "acknowledged":
                incident.acknowledgements.append((requester.id, now))
            else:
                incident.assignments = []
                incident.acknowledgements = []
                resolution = wrapped.get("resolution")
                incident.resolution = str(resolution) if resolution is not None else None
        title = wrapped.get("title")
        if isinstance(title, str) and title:
            incident.title = title
        urgency = wrapped.get("urgency")
        if urgency is not None:
            if urgency not in {"high", "low"}:
                raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Urgency must be high or low"])
            incident.urgency = str(urgency)
        if "priority" in wrapped:
            self._set_priority(incident, wrapped["priority"], requester)
        level = wrapped.get("escalation_level")
        assignments = wrapped.get("assignments")
        if level is not None and assignments is not None:
            raise _PdError(
                400,
                "Invalid Input Provided",
                _ERR_INVALID,
                ["Assignments cannot be specified with an escalation level"],
            )
        if level is not None:
            self._escalate(incident, level, requester)
        if assignments is not None:
            self._reassign(incident, assignments, requester)
        return self._incident_api(incident)

    def _set_priority(self, incident: PdIncident, priority: Any, requester: PdUser) -> None:
        name: str | None = None
        if priority is not None:
            priority_id = priority.get("id") if isinstance(priority, dict) else None
            if not self.priorities_enabled or priority_id not in self._priorities:
                raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Priority not found"])
            name = self._priorities[str(priority_id)]
        incident.priority = name
        incident.updates.append(("priority", name, requester.email))

    def _policy_levels(self, policy_id: str) -> dict[int, list[str]]:
        levels: dict[int, list[str]] = {}
        for entry in self._oncalls:
            if entry.escalation_policy_id == policy_id:
                levels.setdefault(entry.level, []).append(entry.user_id)
        return levels

    def _escalate(self, incident: PdIncident, level: Any, requester: PdUser) -> None:
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise _PdError(
                400, "Invalid Input Provided", _ERR_INVALID, ["Escalation level must be a positive integer"]
            )
        if incident.status == "resolved":
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Incident Already Resolved"])
        levels = self._policy_levels(incident.escalation_policy_id)
        if levels and level > max(levels):
            raise _PdError(
                400,
                "Invalid Input Provided",
                _ERR_INVALID,
                [f"Escalation level must be at most {max(levels)} for this escalation policy"],
            )
        incident.escalation_level = level
        incident.assigned_via = "escalation_policy"
        if levels.get(level):
            incident.assignments = list(dict.fromkeys(levels[level]))
        incident.updates.append(("escalation_level", level, requester.email))

    def _reassign(self, incident: PdIncident, assignments: Any, requester: PdUser) -> None:
        if incident.status == "resolved":
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Incident Already Resolved"])
        if not isinstance(assignments, list) or not assignments:
            raise _PdError(
                400, "Invalid Input Provided", _ERR_INVALID, ["Assignments must be a non-empty list"]
            )
        user_ids: list[str] = []
        for item in assignments:
            assignee = item.get("assignee") if isinstance(item, dict) else None
            if (
                not isinstance(assignee, dict)
                or assignee.get("type") not in {"user", "user_reference"}
                or assignee.get("id") not in self._users
            ):
                raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Assignee not found"])
            user_ids.append(str(assignee["id"]))
        incident.assignments = list(dict.fromkeys(user_ids))
        incident.assigned_via = "direct_assignment"
        emails = [self._users[user_id].email for user_id in incident.assignments]
        incident.updates.append(("assignments", emails, requester.email))

    def _create_incident(self, request: RecordedRequest) -> dict[str, Any]:
        requester = self._requester(request)
        wrapped = request.body.get("incident")
        if not isinstance(wrapped, dict) or wrapped.get("type") != "incident":
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Incident type must be incident"])
        title = wrapped.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Title cannot be empty"])
        service = wrapped.get("service")
        service_id = service.get("id") if isinstance(service, dict) else None
        if (
            not isinstance(service, dict)
            or service.get("type") not in {"service", "service_reference"}
            or service_id not in self._services
        ):
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Service not found"])
        urgency = wrapped.get("urgency", "high")
        if urgency not in {"high", "low"}:
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Urgency must be high or low"])
        incident_key = wrapped.get("incident_key")
        if incident_key is not None and any(
            other.incident_key == incident_key
            and other.service_id == service_id
            and other.status != "resolved"
            for other in self._incidents.values()
        ):
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, [_DEDUP_REJECTED])
        body = wrapped.get("body")
        details = body.get("details") if isinstance(body, dict) else None
        policy_id = self._service_policies.get(str(service_id), "PPOLICY")
        self._policies.setdefault(policy_id, f"Escalation policy {policy_id}")
        now = _now_iso()
        incident = PdIncident(
            id=self._new_id("I"),
            number=next(self._incident_numbers),
            title=title,
            status="triggered",
            urgency=str(urgency),
            service_id=str(service_id),
            escalation_policy_id=policy_id,
            incident_key=str(incident_key) if incident_key is not None else None,
            created_at=now,
            last_status_change_at=now,
            last_status_change_by=requester.id,
            assignments=list(dict.fromkeys(self._policy_levels(policy_id).get(1, []))),
            details=str(details) if details is not None else None,
            created_by=requester.email,
        )
        if "priority" in wrapped:
            self._set_priority(incident, wrapped["priority"], requester)
        self._incidents[incident.id] = incident
        return self._incident_api(incident)

    def _add_note(self, request: RecordedRequest, incident: PdIncident) -> dict[str, Any]:
        requester = self._requester(request)
        wrapped = request.body.get("note")
        content = wrapped.get("content") if isinstance(wrapped, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise _PdError(400, "Invalid Input Provided", _ERR_INVALID, ["Note content must not be empty"])
        note = {
            "id": self._new_id("N"),
            "user": self._user_ref(requester.id),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": _now_iso(),
        }
        incident.notes.append(note)
        return copy.deepcopy(note)
