"""Reading vendor JSON payloads field by field, with 400 reasons that name the path.

The webhook parsers (``bot.alerts.pagerduty``, ``bot.alerts.opsgenie``,
``bot.alerts.alertmanager``) read their bodies through these helpers. Each
takes the object holding the field, the field's key and its full path in the
payload (``"event.data.id"``, ``"alerts[0].startsAt"``), so that the
``InvalidRequest`` (400) a bad field raises tells the sender exactly what is
wrong. Nothing here does I/O.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.errors import InvalidRequest


def load_object(body: bytes) -> dict[str, object]:
    """The body parsed as JSON, which must be an object."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError;
        # RecursionError is what absurdly deep nesting raises.
        raise InvalidRequest("body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("body is not a JSON object")
    return value


def require_object(parent: dict[str, object], key: str, path: str) -> dict[str, object]:
    """``parent[key]`` as an object; missing or null is a 400."""
    value = optional_object(parent, key, path)
    if value is None:
        raise InvalidRequest(f"missing field {path}")
    return value


def optional_object(parent: dict[str, object], key: str, path: str) -> dict[str, object] | None:
    """``parent[key]`` as an object; missing and null give ``None``."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{path} must be an object")
    return value


def require_str(parent: dict[str, object], key: str, path: str) -> str:
    """``parent[key]`` as a stripped string; missing, null and blank are a 400."""
    value = optional_str(parent, key, path)
    if value is None:
        raise InvalidRequest(f"missing field {path}")
    return value


def optional_str(parent: dict[str, object], key: str, path: str) -> str | None:
    """``parent[key]`` as a string; missing, null and blank all give ``None``."""
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{path} must be a string")
    return value.strip() or None


def string_map(parent: dict[str, object], key: str, path: str, *, strict: bool = False) -> dict[str, str]:
    """``parent[key]`` as a map of strings; missing and null give ``{}``.

    With ``strict`` every value must already be a string (a Prometheus label
    set always is), and anything else is a 400 "must be an object of
    strings". Without it a number or flag that slipped into a string-valued
    map (Opsgenie details) is still worth showing, so it is kept as its JSON
    text, the faithful form.
    """
    value = parent.get(key)
    if value is None:
        return {}
    if strict:
        if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
            raise InvalidRequest(f"{path} must be an object of strings")
        return {str(name): item for name, item in value.items()}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{path} must be an object")
    return {str(name): item if isinstance(item, str) else json.dumps(item) for name, item in value.items()}


def require_timestamp(
    parent: dict[str, object], key: str, path: str, *, standard: str = "ISO 8601"
) -> datetime:
    """``parent[key]`` as an ISO 8601 / RFC 3339 timestamp, in UTC.

    ``standard`` only names the format in the 400 reason, so each vendor's
    reason speaks of the format its documentation promises. Python 3.11+
    reads the trailing "Z" and any number of fractional digits, truncating
    the nanoseconds Go writes to the microseconds ``datetime`` holds. A
    timestamp without an offset is taken as UTC: every vendor here sends
    UTC, and a missing offset is not worth losing an alert over.
    """
    text = require_str(parent, key, path)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"{path} is not an {standard} timestamp") from exc
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
