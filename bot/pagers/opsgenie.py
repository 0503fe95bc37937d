"""``Pager`` for Opsgenie's REST API (alerts and who-is-on-call), over httpx.

The opsgenie-sdk package has no schedule on-call API and retries for 30 s at a
time inside a thread, so this adapter speaks the small part of the REST API it
needs directly. Keeping it this small lets a Jira Service Management Ops
adapter sit beside it when Opsgenie ends (2027-04-05).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from bot.errors import IntegrationError
from bot.incidents.model import IncidentView
from bot.ports import PageRequest

_ACTIONS = {"acknowledged": "acknowledge", "resolved": "close", "triggered": "unacknowledge"}
# Opsgenie's limits on alert fields (longer values are refused or cut).
_MESSAGE_LIMIT = 130
_DESCRIPTION_LIMIT = 15000


class OpsgeniePager:
    source = "opsgenie"

    def __init__(
        self,
        api_key: str,
        base_url: str,
        ssl_context: ssl.SSLContext,
        schedule_for: Callable[[IncidentView], str | None],
        default_escalation: str | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"GenieKey {api_key}"},
            verify=ssl_context,
            timeout=httpx.Timeout(15.0),
        )
        self._schedule_for = schedule_for
        self._escalation = default_escalation

    async def aclose(self) -> None:
        await self._client.aclose()

    async def oncall_emails(self, incident: IncidentView) -> list[str]:
        """Who is on call now in the schedule of the alert's team (or the
        schedule configured for its service)."""
        schedule = self._schedule_for(incident)
        if not schedule:
            return []
        data = await self._request(
            "GET",
            f"/v2/schedules/{quote(schedule, safe='')}/on-calls",
            params={"scheduleIdentifierType": "name", "flat": "true"},
        )
        recipients = (data.get("data") or {}).get("onCallRecipients") or []
        return [str(r) for r in recipients if isinstance(r, str) and "@" in r]

    async def set_status(self, ref: str, status: str, actor_email: str | None) -> None:
        action = _ACTIONS.get(status)
        if action is None:
            raise IntegrationError(f"Opsgenie has no action for status {status!r}", retryable=False)
        await self._request(
            "POST",
            f"/v2/alerts/{quote(ref, safe='')}/{action}",
            params={"identifierType": "id"},
            json={
                "user": actor_email or "firebell",
                "source": "firebell",
                "note": f"{action.capitalize()} from Slack via firebell",
            },
        )

    async def set_severity(self, ref: str, severity: int, actor_email: str | None) -> None:
        # The priority endpoint takes only the priority (no user, source or note).
        await self._request(
            "PUT",
            f"/v2/alerts/{quote(ref, safe='')}/priority",
            params={"identifierType": "id"},
            json={"priority": _priority(severity)},
        )

    async def escalate(self, ref: str, actor_email: str | None, escalation: str | None = None) -> str:
        """Escalate the alert to ``escalation`` (the service's), else the default one."""
        escalation = escalation or self._escalation
        if not escalation:
            raise IntegrationError(
                "Opsgenie needs an escalation to escalate to: set opsgenie_escalation for the service",
                retryable=False,
            )
        await self._request(
            "POST",
            f"/v2/alerts/{quote(ref, safe='')}/escalate",
            params={"identifierType": "id"},
            json={
                "escalation": {"name": escalation, "type": "escalation"},
                "user": actor_email or "firebell",
                "source": "firebell",
                "note": "Escalated from Slack via firebell",
            },
        )
        return f"escalated to {escalation}"

    async def add_responder(self, ref: str, email: str, actor_email: str | None) -> None:
        await self._request(
            "POST",
            f"/v2/alerts/{quote(ref, safe='')}/responders",
            params={"identifierType": "id"},
            json={
                "responder": {"type": "user", "username": email},
                "user": actor_email or "firebell",
                "source": "firebell",
                "note": "Added from Slack via firebell",
            },
        )

    async def page(self, request: PageRequest, actor_email: str | None) -> str:
        """Create an alert for team ``request.target``.

        Opsgenie creates alerts asynchronously (202 with a request id only), so
        the alias, which firebell sets to the dedup key and later webhooks
        carry, is returned as the reference.
        """
        body: dict[str, Any] = {
            "message": _truncate(request.title, _MESSAGE_LIMIT),
            "alias": request.dedup_key,
            "responders": [{"name": request.target, "type": "team"}],
            "priority": _priority(request.severity),
            "source": "firebell",
            "user": actor_email or "firebell",
            "details": {"service": request.service},
        }
        if request.description:
            body["description"] = _truncate(request.description, _DESCRIPTION_LIMIT)
        await self._request("POST", "/v2/alerts", json=body)
        return request.dedup_key

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise IntegrationError(f"Opsgenie {method} {path} failed: {exc}", retryable=True) from exc
        if response.status_code >= 400:
            retry_after = response.headers.get("Retry-After")
            raise IntegrationError(
                f"Opsgenie {method} {path} failed: HTTP {response.status_code} {_message(response)}",
                retryable=response.status_code == 429 or response.status_code >= 500,
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                code=str(response.status_code),
            )
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


def _priority(severity: int) -> str:
    if not 1 <= severity <= 5:
        raise IntegrationError(f"Opsgenie has no priority for SEV{severity} (P1-P5)", retryable=False)
    return f"P{severity}"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return ""
