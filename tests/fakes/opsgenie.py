"""A fake Opsgenie REST API (Alert API and Who-is-on-call API) for tests and benchmarks.

Wire format as in Opsgenie's API docs: ``Authorization: GenieKey <key>``;
successful answers carry ``took`` and ``requestId``; errors are
``{"message": ..., "took": ..., "requestId": ...}`` (422 adds ``errors``).

Endpoints:

* ``GET /v2/schedules/{identifier}/on-calls?scheduleIdentifierType=id|name&flat=true``
  -> ``{"data": {"_parent": {...}, "onCallRecipients": [emails]}}``; without
  ``flat=true`` the data holds ``onCallParticipants`` (``{"id", "name", "type": "user"}``).
* ``POST /v2/alerts`` (create; ``message`` of at most 130 characters, ``alias``,
  ``description``, ``responders``, ``priority`` P1-P5, ``details``, ``source``,
  ``user``) -> 202 ``{"result": "Request will be processed", ...}``. An open
  alert with the same alias is de-duplicated (its ``count`` goes up) instead of
  a second alert being created.
* ``POST /v2/alerts/{identifier}/acknowledge|unacknowledge|close|notes|escalate|assign|responders``
  and ``PUT /v2/alerts/{identifier}/priority`` (``identifierType=id|tiny|alias``)
  -> 202 ``{"result": "Request will be processed", ...}``; a malformed body is
  422. Like the real service the request is accepted even for an unknown alert
  (or an unknown user as responder); the outcome is visible through
  ``GET /v2/alerts/requests/{requestId}`` and :meth:`FakeOpsgenie.actions`.
* ``GET /v2/alerts/{identifier}`` -> ``{"data": alert}`` or 404.
* ``GET /v2/alerts/requests/{requestId}`` -> the request status.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .base import FakeServer, RecordedRequest, json_response
from .tls import TlsMaterial

__all__ = ["FakeOpsgenie", "OpsgenieAction", "OpsgenieAlert", "OpsgenieSchedule"]

_ACTIONS = {
    "acknowledge": "Acknowledge",
    "unacknowledge": "UnAcknowledge",
    "close": "Close",
    "notes": "AddNote",
    "escalate": "EscalateToNext",
    "assign": "Assign",
    "responders": "AddResponder",
    "priority": "UpdatePriority",
    "create": "Create",
}
_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
_UNPROCESSABLE = "Request body is not processable. Please check the errors."


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class OpsgenieSchedule:
    """A schedule and who is on call right now."""

    id: str
    name: str
    enabled: bool = True
    oncall: list[tuple[str, str]] = field(default_factory=list)
    """(user id, email) per on-call participant."""


@dataclass
class OpsgenieAlert:
    """An alert and what happened to it."""

    id: str
    tiny_id: str
    alias: str
    message: str
    status: str = "open"
    acknowledged: bool = False
    owner: str = ""
    priority: str = "P3"
    source: str = "firebell-test"
    tags: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    description: str = ""
    created_at: str = field(default_factory=_now_iso)
    updated_at: str = field(default_factory=_now_iso)
    notes: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    acknowledged_by: str | None = None
    closed_by: str | None = None
    responders: list[dict[str, Any]] = field(default_factory=list)
    """Responders as given (``{"type": "team", "name": ...}``, ``{"type": "user", "username": ...}``)."""
    count: int = 1
    """How many create requests this alert absorbed (de-duplication by alias)."""


@dataclass
class OpsgenieAction:
    """One alert action request (acknowledge, close, note, ...)."""

    request_id: str
    action: str
    """Path verb: ``acknowledge``, ``unacknowledge``, ``close``, ``notes``, ``escalate``,
    ``assign``, ``responders``, ``priority``, or ``create`` for ``POST /v2/alerts``."""
    identifier: str
    identifier_type: str
    body: dict[str, Any]
    alert_id: str | None
    """The alert it applied to, or None when no alert matched."""
    processed_at: str = field(default_factory=_now_iso)
    failure: str | None = None
    """Why processing failed although the alert was found (e.g. an unknown user)."""

    @property
    def success(self) -> bool:
        """Whether the action found its alert and was applied."""
        return self.alert_id is not None and self.failure is None


class _OgError(Exception):
    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class FakeOpsgenie(FakeServer):
    """Opsgenie's Alert and Who-is-on-call APIs at :attr:`url`."""

    def __init__(
        self, api_key: str = "og-test-key", *, tls: TlsMaterial | None = None, latency: float = 0.0
    ) -> None:
        super().__init__(tls=tls, latency=latency)
        self.api_key = api_key
        """The key the ``Authorization: GenieKey ...`` header must carry."""
        self.integration_id = str(uuid.uuid4())
        self._schedules: dict[str, OpsgenieSchedule] = {}
        self._users: dict[str, str] = {}
        self._alerts: dict[str, OpsgenieAlert] = {}
        self._actions: list[OpsgenieAction] = []
        self._tiny_ids = itertools.count(1)

    # ------------------------------------------------------------------ seeding

    def add_schedule(self, name: str, *, schedule_id: str | None = None, enabled: bool = True) -> str:
        """Add a schedule; returns its id."""
        with self._lock:
            existing = self._schedule_by_name(name)
            if existing is not None:
                return existing.id
            schedule = OpsgenieSchedule(id=schedule_id or str(uuid.uuid4()), name=name, enabled=enabled)
            self._schedules[schedule.id] = schedule
            return schedule.id

    def add_oncall(self, schedule_name: str, email: str) -> None:
        """Put *email* on call for the schedule (created when unknown)."""
        with self._lock:
            schedule = self._schedules[self.add_schedule(schedule_name)]
            user_id = self._users.setdefault(email.lower(), str(uuid.uuid4()))
            schedule.oncall.append((user_id, email))

    def add_user(self, email: str) -> str:
        """Add a user (username *email*); returns its id. ``add_oncall`` adds users too."""
        with self._lock:
            return self._users.setdefault(email.lower(), str(uuid.uuid4()))

    def clear_oncalls(self, schedule_name: str) -> None:
        """Nobody is on call for the schedule any more."""
        with self._lock:
            schedule = self._schedule_by_name(schedule_name)
            if schedule is not None:
                schedule.oncall.clear()

    def add_alert(
        self,
        alert_id: str | None = None,
        *,
        message: str = "Test alert",
        alias: str | None = None,
        tiny_id: str | None = None,
        status: str = "open",
        acknowledged: bool = False,
        priority: str = "P3",
        tags: list[str] | None = None,
        details: dict[str, str] | None = None,
    ) -> str:
        """Add an alert; returns its id."""
        with self._lock:
            alert = OpsgenieAlert(
                id=alert_id or str(uuid.uuid4()),
                tiny_id=tiny_id or str(next(self._tiny_ids)),
                alias=alias or str(uuid.uuid4()),
                message=message,
                status=status,
                acknowledged=acknowledged,
                priority=priority,
                tags=list(tags or []),
                details=dict(details or {}),
            )
            self._alerts[alert.id] = alert
            return alert.id

    # ------------------------------------------------------------------ assertion helpers

    def alert_by_alias(self, alias: str) -> OpsgenieAlert | None:
        """Snapshot of the newest alert with *alias*, or None."""
        with self._lock:
            found = [alert for alert in self._alerts.values() if alert.alias == alias]
            return copy.deepcopy(found[-1]) if found else None

    def alert(self, alert_id: str) -> OpsgenieAlert:
        """Snapshot of an alert by id (KeyError when unknown)."""
        with self._lock:
            return copy.deepcopy(self._alerts[alert_id])

    @property
    def alerts(self) -> list[OpsgenieAlert]:
        """Snapshot of every alert."""
        with self._lock:
            return [copy.deepcopy(alert) for alert in self._alerts.values()]

    def actions(self, action: str | None = None) -> list[OpsgenieAction]:
        """Alert action requests received (all, or one verb such as ``"acknowledge"``)."""
        with self._lock:
            return [copy.deepcopy(item) for item in self._actions if action is None or item.action == action]

    # ------------------------------------------------------------------ FakeServer hooks

    def _default_fault_body(self, status: int) -> dict[str, Any]:
        messages = {
            401: "Could not authenticate",
            403: "You are not authorized for this operation",
            404: "Not found",
            422: "Request body is not processable",
            429: "You are making too many requests! To avoid errors, we recommend you limit requests.",
        }
        message = messages.get(status, "Internal Server Error" if status >= 500 else "Bad request")
        return self._envelope({"message": message})

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return self._route(request)
        except _OgError as exc:
            payload: dict[str, Any] = {"message": exc.message}
            if exc.errors:
                payload["errors"] = exc.errors
            return json_response(self._envelope(payload), status=exc.status)

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _envelope(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "took": 0.01, "requestId": str(uuid.uuid4())}

    def _schedule_by_name(self, name: str) -> OpsgenieSchedule | None:
        return next((item for item in self._schedules.values() if item.name == name), None)

    def _authenticate(self, request: RecordedRequest) -> None:
        header = request.headers.get("Authorization")
        if not isinstance(header, str) or not header.strip():
            raise _OgError(401, "Could not authenticate")
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() != "geniekey" or not key.strip():
            raise _OgError(422, "Key format is not valid!")
        if key.strip() != self.api_key:
            raise _OgError(401, "Could not authenticate")

    def _route(self, request: RecordedRequest) -> web.StreamResponse:
        parts = [part for part in request.path.split("/") if part]
        method = request.method
        if (
            len(parts) == 4
            and parts[:2] == ["v2", "schedules"]
            and parts[3] == "on-calls"
            and method == "GET"
        ):
            return json_response(self._on_calls(request, parts[2]))
        if len(parts) == 4 and parts[:3] == ["v2", "alerts", "requests"] and method == "GET":
            return json_response(self._request_status(parts[3]))
        if len(parts) == 3 and parts[:2] == ["v2", "alerts"] and method == "GET":
            alert = self._find_alert(parts[2], request.query.get("identifierType", "id"))
            if alert is None:
                raise _OgError(404, "Alert does not exist")
            return json_response(self._envelope({"data": self._alert_api(alert)}))
        if parts == ["v2", "alerts"] and method == "POST":
            return json_response(self._create_alert(request), status=202)
        if len(parts) == 4 and parts[:2] == ["v2", "alerts"] and parts[3] == "priority" and method == "PUT":
            return json_response(self._alert_action(request, parts[2], "priority"), status=202)
        if (
            len(parts) == 4
            and parts[:2] == ["v2", "alerts"]
            and parts[3] in _ACTIONS
            and parts[3] not in {"priority", "create"}
            and method == "POST"
        ):
            return json_response(self._alert_action(request, parts[2], parts[3]), status=202)
        raise _OgError(404, "Not found")

    # ------------------------------------------------------------------ who is on call

    def _on_calls(self, request: RecordedRequest, identifier: str) -> dict[str, Any]:
        identifier_type = request.query.get("scheduleIdentifierType", "id")
        if identifier_type not in {"id", "name"}:
            raise _OgError(422, "Schedule identifier type is not valid!")
        schedule = (
            self._schedules.get(identifier) if identifier_type == "id" else self._schedule_by_name(identifier)
        )
        if schedule is None:
            raise _OgError(404, f"Schedule with identifier [{identifier}] does not exist")
        data: dict[str, Any] = {
            "_parent": {"id": schedule.id, "name": schedule.name, "enabled": schedule.enabled}
        }
        if request.query.get("flat", "false").lower() == "true":
            data["onCallRecipients"] = [email for _, email in schedule.oncall]
        else:
            data["onCallParticipants"] = [
                {"id": user_id, "name": email, "type": "user"} for user_id, email in schedule.oncall
            ]
        return self._envelope({"data": data})

    # ------------------------------------------------------------------ alerts

    def _find_alert(self, identifier: str, identifier_type: str) -> OpsgenieAlert | None:
        if identifier_type not in {"id", "tiny", "alias"}:
            raise _OgError(422, "Invalid identifier type. Should be one of: id, tiny, alias")
        for alert in self._alerts.values():
            key = {"id": alert.id, "tiny": alert.tiny_id, "alias": alert.alias}[identifier_type]
            if key == identifier:
                return alert
        return None

    def _alert_api(self, alert: OpsgenieAlert) -> dict[str, Any]:
        report: dict[str, Any] = {}
        if alert.acknowledged_by:
            report["acknowledgedBy"] = alert.acknowledged_by
            report["ackTime"] = 1000
        if alert.closed_by:
            report["closedBy"] = alert.closed_by
            report["closeTime"] = 2000
        return {
            "id": alert.id,
            "tinyId": alert.tiny_id,
            "alias": alert.alias,
            "message": alert.message,
            "status": alert.status,
            "acknowledged": alert.acknowledged,
            "isSeen": alert.acknowledged,
            "tags": list(alert.tags),
            "snoozed": False,
            "lastOccurredAt": alert.created_at,
            "createdAt": alert.created_at,
            "updatedAt": alert.updated_at,
            "source": alert.source,
            "owner": alert.owner,
            "priority": alert.priority,
            "responders": copy.deepcopy(alert.responders),
            "count": alert.count,
            "integration": {"id": self.integration_id, "name": "firebell-test", "type": "API"},
            "report": report,
            "actions": [],
            "entity": "",
            "description": alert.description,
            "details": dict(alert.details),
        }

    def _alert_action(self, request: RecordedRequest, identifier: str, verb: str) -> dict[str, Any]:
        identifier_type = request.query.get("identifierType", "id")
        body = {key: value for key, value in request.body.items() if key != "identifierType"}
        if verb == "notes" and not isinstance(body.get("note"), str):
            raise _OgError(
                422, "Request body is not processable. Please check the errors.", {"note": "may not be empty"}
            )
        if verb == "escalate":
            escalation = body.get("escalation")
            if not isinstance(escalation, dict):
                raise _OgError(422, _UNPROCESSABLE, {"escalation": "may not be null"})
            if not (escalation.get("id") or escalation.get("name")):
                raise _OgError(422, _UNPROCESSABLE, {"escalation": "id or name must be given"})
        if verb == "priority" and body.get("priority") not in _PRIORITIES:
            raise _OgError(422, _UNPROCESSABLE, {"priority": "must be one of P1, P2, P3, P4, P5"})
        if verb == "responders":
            self._check_responder(body.get("responder"), "responder")
        if verb == "assign" and not isinstance(body.get("owner"), dict):
            raise _OgError(
                422, "Request body is not processable. Please check the errors.", {"owner": "may not be null"}
            )
        alert = self._find_alert(identifier, identifier_type)
        envelope = self._envelope({"result": "Request will be processed"})
        action = OpsgenieAction(
            request_id=str(envelope["requestId"]),
            action=verb,
            identifier=identifier,
            identifier_type=identifier_type,
            body=copy.deepcopy(body),
            alert_id=alert.id if alert is not None else None,
        )
        self._actions.append(action)
        if alert is not None:
            responder = body.get("responder")
            if (
                verb == "responders"
                and isinstance(responder, dict)
                and responder.get("type") == "user"
                and responder.get("username")
                and str(responder["username"]).lower() not in self._users
            ):
                action.failure = f"User [{responder['username']}] does not exist"
            else:
                self._apply(alert, verb, body)
        envelope["took"] = 0.1
        return envelope

    @staticmethod
    def _check_responder(responder: Any, name: str) -> None:
        if not isinstance(responder, dict):
            raise _OgError(422, _UNPROCESSABLE, {name: "may not be null"})
        kind = responder.get("type")
        if kind not in _RESPONDER_TYPES:
            raise _OgError(
                422, _UNPROCESSABLE, {f"{name}.type": "must be one of team, user, escalation, schedule"}
            )
        keys = ("id", "username") if kind == "user" else ("id", "name")
        if not any(isinstance(responder.get(key), str) and responder.get(key) for key in keys):
            raise _OgError(422, _UNPROCESSABLE, {name: f"{' or '.join(keys)} must be given"})

    def _create_alert(self, request: RecordedRequest) -> dict[str, Any]:
        body = dict(request.body)
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            raise _OgError(422, _UNPROCESSABLE, {"message": "Message can not be empty."})
        if len(message) > 130:
            raise _OgError(422, _UNPROCESSABLE, {"message": "Message can not be longer than 130 characters."})
        alias = body.get("alias")
        if alias is not None and (not isinstance(alias, str) or len(alias) > 512):
            raise _OgError(422, _UNPROCESSABLE, {"alias": "Alias can not be longer than 512 characters."})
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 15000:
            raise _OgError(
                422, _UNPROCESSABLE, {"description": "Description can not be longer than 15000 characters."}
            )
        priority = body.get("priority", "P3")
        if priority not in _PRIORITIES:
            raise _OgError(422, _UNPROCESSABLE, {"priority": "must be one of P1, P2, P3, P4, P5"})
        responders = body.get("responders", [])
        if not isinstance(responders, list):
            raise _OgError(422, _UNPROCESSABLE, {"responders": "must be a list"})
        for position, responder in enumerate(responders):
            self._check_responder(responder, f"responders[{position}]")
        details = body.get("details", {})
        if not isinstance(details, dict):
            raise _OgError(422, _UNPROCESSABLE, {"details": "must be a map of strings"})
        alias = alias if isinstance(alias, str) and alias else message
        existing = next(
            (item for item in self._alerts.values() if item.alias == alias and item.status == "open"), None
        )
        if existing is not None:
            existing.count += 1
            existing.updated_at = _now_iso()
            alert = existing
        else:
            alert = OpsgenieAlert(
                id=str(uuid.uuid4()),
                tiny_id=str(next(self._tiny_ids)),
                alias=alias,
                message=message,
                priority=str(priority),
                source=str(body.get("source") or "127.0.0.1"),
                tags=[str(tag) for tag in body.get("tags", []) if isinstance(tag, str)],
                details={str(key): str(value) for key, value in details.items()},
                description=description,
                responders=copy.deepcopy(responders),
            )
            self._alerts[alert.id] = alert
        envelope = self._envelope({"result": "Request will be processed"})
        self._actions.append(
            OpsgenieAction(
                request_id=str(envelope["requestId"]),
                action="create",
                identifier=alias,
                identifier_type="alias",
                body=copy.deepcopy(body),
                alert_id=alert.id,
            )
        )
        envelope["took"] = 0.1
        return envelope

    @staticmethod
    def _apply(alert: OpsgenieAlert, verb: str, body: dict[str, Any]) -> None:
        user = str(body.get("user") or "")
        note = body.get("note")
        if verb == "acknowledge":
            alert.acknowledged = True
            alert.acknowledged_by = user or "API"
            alert.owner = user or alert.owner
        elif verb == "unacknowledge":
            alert.acknowledged = False
        elif verb == "close":
            alert.status = "closed"
            alert.closed_by = user or "API"
        elif verb == "escalate":
            alert.escalations.append(copy.deepcopy(body))
        elif verb == "assign":
            owner = body.get("owner")
            if isinstance(owner, dict):
                alert.owner = str(owner.get("username") or owner.get("id") or "")
        elif verb == "priority":
            alert.priority = str(body["priority"])
        elif verb == "responders":
            responder = copy.deepcopy(body["responder"])
            if responder not in alert.responders:
                alert.responders.append(responder)
        if isinstance(note, str) and note:
            alert.notes.append({"note": note, "owner": user or "API", "createdAt": _now_iso()})
        alert.updated_at = _now_iso()

    def _request_status(self, request_id: str) -> dict[str, Any]:
        action = next((item for item in self._actions if item.request_id == request_id), None)
        if action is None:
            raise _OgError(404, "Request does not exist")
        alert = self._alerts.get(action.alert_id) if action.alert_id else None
        return self._envelope(
            {
                "data": {
                    "success": action.success,
                    "action": _ACTIONS[action.action],
                    "processedAt": action.processed_at,
                    "integrationId": self.integration_id,
                    "isSuccess": action.success,
                    "status": f"{_ACTIONS[action.action]} processed"
                    if action.success
                    else action.failure or "Alert does not exist",
                    "alertId": action.alert_id or "",
                    "alias": alert.alias if alert is not None else "",
                }
            }
        )
