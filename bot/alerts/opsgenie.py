"""Opsgenie outgoing webhook: the JSON body of one delivery to ``AlertEvent`` values.

This module owns the reading of the Opsgenie webhook integration's alert
action payload (``{"action", "alert": {...}, "source": {...},
"integrationName", ...}``): which actions firebell acts on, which alert fields
it takes, how a delivery key is derived (Opsgenie sends no delivery id), and
the 400 reasons for a body that is not such a payload. The bearer-token check
lives in ``bot.alerts.signatures``; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.payload import (
    load_object,
    optional_object,
    optional_str,
    require_object,
    require_str,
    string_map,
)
from bot.errors import InvalidRequest

_ACTIONS: dict[str, AlertAction] = {
    "Create": AlertAction.TRIGGER,
    "Acknowledge": AlertAction.ACKNOWLEDGE,
    "UnAcknowledge": AlertAction.UNACKNOWLEDGE,
    "Close": AlertAction.RESOLVE,
    "AddNote": AlertAction.NOTE,
    "Escalate": AlertAction.ESCALATE,
    "AssignOwnership": AlertAction.REASSIGN,
    "UpdatePriority": AlertAction.PRIORITY,
}

UNKNOWN_SERVICE = "unknown"
DEFAULT_APP_URL = "https://app.opsgenie.com"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_opsgenie(body: bytes, app_url: str = DEFAULT_APP_URL) -> list[AlertEvent]:
    """The events in one Opsgenie webhook delivery.

    Actions firebell does not act on (AddTags, Delete, custom actions, ...)
    give ``[]``. A body that is not an Opsgenie alert action payload raises
    ``InvalidRequest`` (400).
    """
    root = load_object(body)
    action_name = require_str(root, "action", "action")
    action = _ACTIONS.get(action_name)
    if action is None:
        return []

    alert = require_object(root, "alert", "alert")
    alert_id = require_str(alert, "alertId", "alert.alertId")
    # updatedAt says when this action happened; createdAt is the fallback for
    # the Create action, where the two are the same moment anyway.
    stamp_key = "updatedAt" if alert.get("updatedAt") is not None else "createdAt"
    raw_stamp = alert.get(stamp_key)
    if raw_stamp is None:
        raise InvalidRequest("missing field alert.createdAt")
    occurred_at = _epoch_timestamp(raw_stamp, f"alert.{stamp_key}")

    details = string_map(alert, "details", "alert.details")
    priority = _priority(alert.get("priority"))
    note = optional_str(alert, "note", "alert.note")
    owner = optional_str(alert, "owner", "alert.owner")
    title = optional_str(alert, "message", "alert.message")
    if title is None:
        # tinyId ("#23") is how people refer to alerts, but it only feeds
        # this fallback, so an odd type is not worth a 400.
        tiny_id = alert.get("tinyId")
        has_tiny_id = (
            isinstance(tiny_id, str | int) and not isinstance(tiny_id, bool) and str(tiny_id).strip() != ""
        )
        title = f"Opsgenie alert #{tiny_id}" if has_tiny_id else f"Opsgenie alert {alert_id}"

    detail: str | None = None
    if action is AlertAction.NOTE:
        detail = note
    elif action is AlertAction.REASSIGN:
        detail = owner
    elif action is AlertAction.PRIORITY:
        detail = priority
    elif action is AlertAction.ESCALATE:
        escalation = optional_object(root, "escalationNotify", "escalationNotify")
        if escalation:
            detail = optional_str(escalation, "name", "escalationNotify.name")

    return [
        AlertEvent(
            source=Source.OPSGENIE,
            delivery_key=_delivery_key(action_name, alert_id, raw_stamp, note, owner, priority),
            source_ref=alert_id,
            action=action,
            title=title,
            service=(
                (details.get("service") or "").strip()
                or optional_str(alert, "entity", "alert.entity")
                or UNKNOWN_SERVICE
            ),
            occurred_at=occurred_at,
            priority=priority,
            url=_alert_url(app_url, alert_id),
            actor=optional_str(alert, "username", "alert.username"),
            detail=detail,
            teams=_teams(alert),
            labels=details,
            dedup_key=optional_str(alert, "alias", "alert.alias"),
        )
    ]


def _delivery_key(
    action: str,
    alert_id: str,
    stamp: object,
    note: str | None,
    owner: str | None,
    priority: str | None,
) -> str:
    """A stable id for this delivery, derived from what distinguishes events.

    Opsgenie retries a failed delivery with the same body, so the same inputs
    must give the same key; two different actions on one alert differ in the
    action, the update time or the note/owner/priority, so they must not.
    """
    canonical = json.dumps(
        [action, alert_id, stamp, note, owner, priority],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _priority(value: object) -> str | None:
    # Opsgenie sends "P2", but integrations built on older payloads send 2 or
    # "2"; the raw text is kept and severity.normalise_priority reconciles it.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest("alert.priority must be a string or a number")
    return str(value).strip() or None


def _teams(alert: dict[str, object]) -> tuple[str, ...]:
    teams = alert.get("teams")
    if teams is not None:
        if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
            raise InvalidRequest("alert.teams must be a list of strings")
        return tuple(team for team in teams if team)
    team = optional_str(alert, "team", "alert.team")
    return (team,) if team else ()


def _epoch_timestamp(value: object, path: str) -> datetime:
    """An epoch timestamp whose unit is told by its magnitude.

    Opsgenie sends createdAt in milliseconds but updatedAt in nanoseconds.
    Today's instants are ~1.7e9 s, ~1.7e12 ms, ~1.7e15 us and ~1.7e18 ns, so
    the thresholds below sit orders of magnitude away from any real value.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    # json.loads accepts NaN and Infinity, which no unit makes a time.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{path} must be an epoch timestamp number")
    if value < 0:
        raise InvalidRequest(f"{path} must not be negative")
    if value >= 10**17:
        microseconds = int(value) // 1000
    elif value >= 10**14:
        microseconds = int(value)
    elif value >= 10**11:
        microseconds = int(value * 1000)
    else:
        microseconds = int(value * 1_000_000)
    try:
        # Integer microseconds keep nanosecond inputs exact to the microsecond,
        # which a float through fromtimestamp would not.
        return _EPOCH + timedelta(microseconds=microseconds)
    except OverflowError as exc:
        raise InvalidRequest(f"{path} is out of range") from exc


def _alert_url(app_url: str, alert_id: str) -> str:
    return f"{app_url.rstrip('/')}/alert/detail/{quote(alert_id, safe='')}/details"


def app_url_for(api_url: str) -> str:
    """The Opsgenie web app that belongs to an API base URL (EU: api.eu → app.eu)."""
    parts = urlsplit(api_url)
    if parts.hostname and parts.hostname.startswith("api."):
        return f"https://app.{parts.hostname[4:]}"
    return DEFAULT_APP_URL
