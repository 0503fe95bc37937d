"""Sample webhook payloads for unit tests, scenario tests and benchmarks.

Every builder returns a fresh, JSON-ready ``dict`` shaped like the vendor's
real payload, filled with realistic defaults that can each be overridden.
Builders are deterministic: the same arguments give the same payload (ids are
derived from the arguments, never from clocks or randomness), so a payload
built twice is a redelivery and a payload with one argument changed is a new
event. Serialise with ``to_body`` and sign PagerDuty bodies with
``pagerduty_signature``.

Conventions shared by the builders:

- passing ``None`` for an optional field sends it as JSON ``null`` (or leaves
  it out, where the vendor leaves it out; each builder says which);
- ``**extra`` keyword arguments are merged last into the vendor object the
  parser reads most (PagerDuty ``event.data``, Opsgenie ``alert``), so a test
  can add or replace any field, including with a malformed value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

PAGERDUTY_WEB = "https://acme.pagerduty.com"
PAGERDUTY_API = "https://api.pagerduty.com"
ALERTMANAGER_URL = "http://alertmanager.example.com:9093"
PROMETHEUS_URL = "http://prometheus.example.com:9090"

# Fixed so that derived ids are the same on every run and every machine.
_SAMPLES_NAMESPACE = uuid.UUID("6f1c2b0e-7a4d-4d7e-9a53-2f0a5f3e8c11")

# 2024-05-20T14:00:00Z, the instant every sample happens at by default.
SAMPLE_EPOCH_MS = 1_716_213_600_000


def to_body(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as the compact UTF-8 JSON a vendor would POST."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def pagerduty_signature(body: bytes, secret: str) -> str:
    """The ``X-PagerDuty-Signature`` value PagerDuty sends for ``body``.

    During a secret rotation PagerDuty sends one entry per secret; join the
    values of this function with ``","`` to build such a header.
    """
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def _derived_id(prefix: str, *parts: object) -> str:
    """A PagerDuty-style 7-character id derived from ``parts``."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
    return (prefix + digest.upper())[:7]


def _pd_ref(kind: str, ref_id: str, summary: str, path: str) -> dict[str, Any]:
    return {
        "html_url": f"{PAGERDUTY_WEB}/{path}/{ref_id}",
        "id": ref_id,
        "self": f"{PAGERDUTY_API}/{path}/{ref_id}",
        "summary": summary,
        "type": f"{kind}_reference",
    }


def _pd_user(name: str) -> dict[str, Any]:
    return _pd_ref("user", _derived_id("P", "user", name), name, "users")


_PD_STATUS = {
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
}


def pagerduty_event(
    event_type: str = "incident.triggered",
    incident_id: str = "PGR0VU2",
    event_id: str | None = None,
    title: str = "Checkout API error rate above 5%",
    service: str = "checkout",
    priority: str | None = "P1",
    urgency: str = "high",
    escalation_policy_id: str = "PD6ASNH",
    *,
    occurred_at: str = "2024-05-20T14:00:00.000Z",
    agent: str | None = "Earline Greenholt",
    assignees: Sequence[str] = ("Earline Greenholt",),
    teams: Sequence[str] = ("Payments",),
    note: str = "Rolled back deploy 4711; error rate is recovering.",
    resolve_reason: Any = None,
    number: int = 1234,
    status: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A PagerDuty Webhooks v3 body: ``{"event": {...}}``.

    - ``event_id`` defaults to a UUID derived from incident, event type and
      ``occurred_at``: rebuilding the same event gives the same id.
    - ``priority=None`` sends ``"priority": null`` (an incident without one).
    - ``agent`` is the acting user's name; ``None`` sends ``"agent": null``
      (PagerDuty itself acted, e.g. an automatic escalation).
    - ``status`` defaults to what ``event_type`` implies.
    - ``incident.annotated`` builds an ``incident_note`` whose ``content`` is
      ``note``; ``pagey.ping`` builds the ping event; any other type builds an
      incident.
    - ``**extra`` is merged into ``event.data`` last.
    """
    if event_id is None:
        event_id = str(uuid.uuid5(_SAMPLES_NAMESPACE, f"{incident_id}/{event_type}/{occurred_at}"))
    incident_url = f"{PAGERDUTY_WEB}/incidents/{incident_id}"
    data: dict[str, Any]
    if event_type == "pagey.ping":
        data = {"message": "Hello from your friend Pagey!", "type": "ping"}
    elif event_type == "incident.annotated":
        data = {
            "incident": _pd_ref("incident", incident_id, title, "incidents"),
            "id": _derived_id("P", "note", incident_id, note),
            "content": note,
            "trimmed": False,
            "type": "incident_note",
        }
    else:
        data = {
            "id": incident_id,
            "type": "incident",
            "self": f"{PAGERDUTY_API}/incidents/{incident_id}",
            "html_url": incident_url,
            "number": number,
            "status": status or _PD_STATUS.get(event_type, "triggered"),
            "incident_key": hashlib.sha256(incident_id.encode()).hexdigest()[:32],
            "created_at": "2024-05-20T14:00:00Z",
            "title": title,
            "service": _pd_ref("service", _derived_id("P", "service", service), service, "services"),
            "assignees": [_pd_user(name) for name in assignees],
            "escalation_policy": _pd_ref(
                "escalation_policy",
                escalation_policy_id,
                f"{service} escalation",
                "escalation_policies",
            ),
            "teams": [_pd_ref("team", _derived_id("P", "team", team), team, "teams") for team in teams],
            "priority": None
            if priority is None
            else {
                **_pd_ref(
                    "priority",
                    _derived_id("P", "priority", priority),
                    priority,
                    "priorities",
                ),
                "html_url": None,
            },
            "urgency": urgency,
            "conference_bridge": None,
            "resolve_reason": resolve_reason,
        }
    data.update(extra)
    return {
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "pagey" if event_type == "pagey.ping" else "incident",
            "occurred_at": occurred_at,
            "agent": None if agent is None or event_type == "pagey.ping" else _pd_user(agent),
            "client": None,
            "data": data,
        }
    }


_OPSGENIE_DEFAULT_NOTE = "Rolled back deploy 4711; error rate is recovering."
_OPSGENIE_DEFAULT_OWNER = "earline@example.com"


def opsgenie_event(
    action: str = "Create",
    alert_id: str = "70413a06-38d6-4c85-92b8-5ebc900d42e2-1716213600000",
    priority: str | int | None = "P1",
    message: str = "Checkout API error rate above 5%",
    *,
    service: str | None = "checkout",
    entity: str = "checkout-api",
    tiny_id: str = "1791",
    alias: str = "checkout-error-rate",
    created_at: int | None = SAMPLE_EPOCH_MS,
    updated_at: int | None = None,
    username: str = "earline@example.com",
    note: str | None = None,
    owner: str | None = None,
    teams: Sequence[str] | None = ("payments",),
    team: str | None = None,
    tags: Sequence[str] = ("checkout", "production"),
    details: Mapping[str, Any] | None = None,
    escalation: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An Opsgenie webhook integration body for one alert action.

    - ``priority`` is sent as given: ``"P2"``, ``2`` and ``"2"`` all occur in
      the wild; ``None`` leaves the field out.
    - ``created_at`` is epoch milliseconds, ``updated_at`` epoch nanoseconds
      as Opsgenie sends them; ``updated_at`` defaults to ``created_at`` in
      nanoseconds, and ``None`` for ``created_at`` leaves it out.
    - ``service`` goes into ``alert.details["service"]`` (``None`` leaves it
      out); ``details`` adds further details.
    - ``note`` and ``owner`` default to a sample value for ``AddNote`` and
      ``AssignOwnership`` and are left out otherwise.
    - ``teams=None`` leaves ``alert.teams`` out; ``team`` sets ``alert.team``.
    - ``escalation`` adds a top-level ``escalationNotify`` with that name.
    - ``**extra`` is merged into ``alert`` last.
    """
    if note is None and action == "AddNote":
        note = _OPSGENIE_DEFAULT_NOTE
    if owner is None and action == "AssignOwnership":
        owner = _OPSGENIE_DEFAULT_OWNER
    if updated_at is None and created_at is not None:
        updated_at = created_at * 1_000_000

    all_details: dict[str, Any] = {"region": "eu-west-1"}
    if service is not None:
        all_details["service"] = service
    all_details.update(details or {})

    alert: dict[str, Any] = {
        "alertId": alert_id,
        "message": message,
        "tags": list(tags),
        "tinyId": tiny_id,
        "entity": entity,
        "alias": alias,
        "username": username,
        "userId": str(uuid.uuid5(_SAMPLES_NAMESPACE, f"user/{username}")),
        "description": f"{message}. See the checkout dashboard.",
        "responders": [{"type": "team", "id": "team-payments", "name": "payments"}],
        "source": "prometheus",
        "details": all_details,
    }
    optional = {
        "createdAt": created_at,
        "updatedAt": updated_at,
        "priority": priority,
        "teams": None if teams is None else list(teams),
        "team": team,
        "note": note,
        "owner": owner,
    }
    alert.update({key: value for key, value in optional.items() if value is not None})
    alert.update(extra)

    payload: dict[str, Any] = {
        "action": action,
        "alert": alert,
        "source": {"name": "web", "type": "web"},
        "integrationName": "firebell",
        "integrationId": "37c8f316-17c6-49d7-899b-9c7e540c048d",
        "integrationType": "Webhook",
    }
    if escalation is not None:
        payload["escalationNotify"] = {
            "id": str(uuid.uuid5(_SAMPLES_NAMESPACE, f"escalation/{escalation}")),
            "name": escalation,
            "type": "escalation",
        }
    return payload


def alertmanager_alert(
    alertname: str = "HighErrorRate",
    instance: str = "checkout-1:8080",
    status: str = "firing",
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    starts_at: str = "2024-05-20T14:00:00.123456789Z",
    ends_at: str | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """One entry of an Alertmanager group's ``alerts`` list.

    - ``labels`` are merged over the defaults (alertname, instance,
      job/service "checkout", severity "critical"); a value of ``""`` is how
      Prometheus drops a label, so an empty value removes the default.
    - ``ends_at`` defaults to Alertmanager's zero time while firing and to 30
      minutes after the default start when resolved.
    - ``fingerprint`` defaults to a hash of the label set, as Alertmanager's.
    - timestamps carry nanoseconds, as Go writes them.
    """
    all_labels = {
        "alertname": alertname,
        "instance": instance,
        "job": "checkout",
        "service": "checkout",
        "severity": "critical",
    }
    all_labels.update(labels or {})
    all_labels = {key: value for key, value in all_labels.items() if value != ""}
    if annotations is None:
        annotations = {
            "summary": f"{alertname} on {instance}",
            "description": "5xx responses above 5% for 5 minutes.",
        }
    if ends_at is None:
        ends_at = "0001-01-01T00:00:00Z" if status == "firing" else "2024-05-20T14:30:00.987654321Z"
    if fingerprint is None:
        canonical = json.dumps(sorted(all_labels.items()), separators=(",", ":"))
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": all_labels,
        "annotations": dict(annotations),
        "startsAt": starts_at,
        "endsAt": ends_at,
        "generatorURL": f"{PROMETHEUS_URL}/graph?g0.expr=job%3Acheckout%3Aerror_rate",
        "fingerprint": fingerprint,
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The key/value pairs every map shares, as Alertmanager computes them."""
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {key: value for key, value in common.items() if other.get(key) == value}
    return common


def alertmanager_group(
    status: str = "firing",
    group_key: str | None = None,
    alerts: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    annotations: Mapping[str, str] | None = None,
    group_labels: Mapping[str, str] | None = None,
    receiver: str = "firebell",
    external_url: str = ALERTMANAGER_URL,
    truncated_alerts: int = 0,
    version: str = "4",
) -> dict[str, Any]:
    """An Alertmanager webhook body (payload version 4) for one group.

    - ``alerts`` defaults to one ``alertmanager_alert`` with the group's
      status.
    - ``labels`` (``commonLabels``) and ``annotations`` (``commonAnnotations``)
      default to what every alert shares, as Alertmanager computes them.
    - ``group_labels`` default to the common ``alertname``; ``group_key``
      defaults to the key Alertmanager builds for a top-level route grouping
      by them.
    """
    if alerts is None:
        alerts = [alertmanager_alert(status=status)]
    alert_list = [dict(alert) for alert in alerts]
    common_labels = dict(labels) if labels is not None else _common([a["labels"] for a in alert_list])
    common_annotations = (
        dict(annotations) if annotations is not None else _common([a["annotations"] for a in alert_list])
    )
    if group_labels is None:
        group_labels = {"alertname": common_labels["alertname"]} if "alertname" in common_labels else {}
    if group_key is None:
        matchers = ",".join(f'{key}="{value}"' for key, value in sorted(group_labels.items()))
        group_key = f"{{}}:{{{matchers}}}"
    return {
        "version": version,
        "groupKey": group_key,
        "truncatedAlerts": truncated_alerts,
        "status": status,
        "receiver": receiver,
        "groupLabels": dict(group_labels),
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": alert_list,
    }
