"""Prometheus Alertmanager webhook (payload version 4) to ``AlertEvent`` values.

This module owns the reading of Alertmanager's webhook body (``{"version",
"groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
"commonLabels", "commonAnnotations", "externalURL", "alerts": [...]}``): one
notification for one alert group becomes one event, identified by receiver and
group key, with a delivery key that recognises Alertmanager's repeat
notifications. It also owns the 400 reasons for a body that is not such a
payload. The bearer-token check lives in ``bot.alerts.signatures``; nothing
here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from bot.alerts.event import AlertAction, AlertEvent, Source
from bot.alerts.payload import load_object, optional_str, require_str, require_timestamp, string_map
from bot.errors import InvalidRequest

SUPPORTED_VERSION = "4"
UNKNOWN_SERVICE = "unknown"
MAX_LISTED_ALERTS = 10

_ACTIONS: dict[str, AlertAction] = {
    "firing": AlertAction.TRIGGER,
    "resolved": AlertAction.RESOLVE,
}


def parse_alertmanager(body: bytes) -> list[AlertEvent]:
    """The one event in an Alertmanager group notification.

    Raises ``InvalidRequest`` (400) for a body that is not a version 4
    webhook payload.
    """
    root = load_object(body)
    version = root.get("version")
    if version != SUPPORTED_VERSION:
        raise InvalidRequest(
            f"unsupported Alertmanager payload version {_shown(version)} (expected {SUPPORTED_VERSION!r})"
        )
    group_key = require_str(root, "groupKey", "groupKey")
    status = require_str(root, "status", "status")
    action = _ACTIONS.get(status)
    if action is None:
        raise InvalidRequest(f"status must be one of {', '.join(sorted(_ACTIONS))}, got {_shown(status)}")
    receiver = require_str(root, "receiver", "receiver")
    raw_alerts = root.get("alerts")
    if raw_alerts is None:
        raise InvalidRequest("missing field alerts")
    if not isinstance(raw_alerts, list):
        raise InvalidRequest("alerts must be a list")
    if not raw_alerts:
        # Alertmanager never sends an empty group, and without an alert there
        # is no start time to give the event.
        raise InvalidRequest("alerts is empty")
    alerts = [_alert(item, index) for index, item in enumerate(raw_alerts)]

    common_labels = string_map(root, "commonLabels", "commonLabels", strict=True)
    common_annotations = string_map(root, "commonAnnotations", "commonAnnotations", strict=True)
    group_labels = string_map(root, "groupLabels", "groupLabels", strict=True)
    truncated = _truncated(root)
    matching = [alert for alert in alerts if alert.status == status]

    return [
        AlertEvent(
            source=Source.ALERTMANAGER,
            delivery_key=_delivery_key(group_key, status, alerts),
            source_ref=f"{receiver}/{group_key}",
            action=action,
            title=_title(
                common_annotations,
                common_labels,
                group_labels,
                group_key,
                len(matching),
            ),
            service=(common_labels.get("service") or common_labels.get("job") or UNKNOWN_SERVICE),
            occurred_at=min(alert.starts_at for alert in alerts),
            priority=common_labels.get("severity") or None,
            url=optional_str(root, "externalURL", "externalURL"),
            detail=_detail(matching, truncated),
            labels=common_labels,
        )
    ]


@dataclass(frozen=True, slots=True)
class _Alert:
    """The parts of one alert of the group that firebell uses."""

    status: str
    labels: dict[str, str]
    starts_at: datetime
    fingerprint: str

    @property
    def name(self) -> str:
        """``alertname on instance``, or as much of it as the labels give."""
        alertname = self.labels.get("alertname") or self.fingerprint
        instance = self.labels.get("instance")
        return f"{alertname} on {instance}" if instance else alertname


def _alert(item: object, index: int) -> _Alert:
    path = f"alerts[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{path} must be an object")
    labels = string_map(item, "labels", f"{path}.labels", strict=True)
    fingerprint = optional_str(item, "fingerprint", f"{path}.fingerprint")
    if fingerprint is None:
        # Alertmanager's fingerprint is a hash of the label set; before it
        # was sent (< 0.19) the label set itself identifies the alert.
        fingerprint = _digest(sorted(labels.items()))[:16]
    return _Alert(
        status=require_str(item, "status", f"{path}.status"),
        labels=labels,
        starts_at=require_timestamp(item, "startsAt", f"{path}.startsAt", standard="RFC 3339"),
        fingerprint=fingerprint,
    )


def _delivery_key(group_key: str, status: str, alerts: list[_Alert]) -> str:
    """A key equal for repeat notifications of the same group state.

    Alertmanager re-sends a group every repeat_interval with the same alerts;
    those repeats must map to one key, while an alert joining, leaving or
    resolving changes the (fingerprint, status) set and so the key. The start
    time is part of it too: the same alert firing again after it resolved is
    a new event (same fingerprint, new startsAt), not a repeat.
    """
    entries = sorted({(alert.fingerprint, alert.status, alert.starts_at.isoformat()) for alert in alerts})
    return _digest([group_key, status, entries])


def _title(
    annotations: dict[str, str],
    labels: dict[str, str],
    group_labels: dict[str, str],
    group_key: str,
    count: int,
) -> str:
    summary = annotations.get("summary", "").strip()
    if summary:
        return summary
    alertname = labels.get("alertname", "").strip()
    if alertname:
        return f"{alertname} ({count} alerts)" if count > 1 else alertname
    if group_labels:
        return ", ".join(f"{key}={value}" for key, value in sorted(group_labels.items()))
    return group_key


def _detail(alerts: list[_Alert], truncated: int) -> str | None:
    # A channel message, not a report: the first few names and a count of the
    # rest, including those Alertmanager itself left out (truncatedAlerts).
    names = [alert.name for alert in alerts[:MAX_LISTED_ALERTS]]
    more = len(alerts) - len(names) + truncated
    if more > 0:
        names.append(f"and {more} more")
    return ", ".join(names) or None


def _truncated(root: dict[str, object]) -> int:
    value = root.get("truncatedAlerts", 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest("truncatedAlerts must be a non-negative whole number")
    return value


def _shown(value: object) -> str:
    # Reasons go back to the sender and into logs: echo enough of a bad value
    # to recognise it, never an unbounded amount.
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _digest(value: object) -> str:
    canonical = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
