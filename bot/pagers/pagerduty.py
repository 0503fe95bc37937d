"""``Pager`` for PagerDuty REST API v2, through the official ``pagerduty`` client.

The client is synchronous, so every call runs in a thread. Its errors are
translated here into ``IntegrationError``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx2
import pagerduty

from bot.errors import IntegrationError
from bot.incidents.model import IncidentView


class PagerDutyPager:
    source = "pagerduty"

    def __init__(
        self, token: str, from_email: str | None, base_url: str, ssl_context: ssl.SSLContext
    ) -> None:
        try:
            self._client = pagerduty.RestApiV2Client(
                token, default_from=from_email, base_url=base_url.rstrip("/"), verify=ssl_context
            )
        except pagerduty.UrlError as exc:
            raise IntegrationError(
                f"PAGERDUTY_API_URL must be an https:// URL: {exc}", retryable=False
            ) from exc
        self._from_email = from_email
        self._known_users: dict[str, bool] = {}

    async def oncall_emails(self, incident: IncidentView) -> list[str]:
        """Who is on call at the first level of the incident's escalation policy."""
        if not incident.escalation_policy_id:
            return []
        policy = incident.escalation_policy_id
        oncalls = await self._call(
            "list on-calls",
            lambda: self._client.list_all(
                "oncalls",
                params={"escalation_policy_ids[]": [policy], "include[]": ["users"]},
            ),
        )
        return first_level_emails(oncalls)

    async def set_status(self, ref: str, status: str, actor_email: str | None) -> None:
        sender = self._from_email
        if actor_email and await self._is_user(actor_email):
            sender = actor_email
        if not sender:
            raise IntegrationError(
                "PagerDuty needs a From address: set PAGERDUTY_FROM_EMAIL", retryable=False
            )
        body = {"incident": {"type": "incident_reference", "status": status}}
        await self._call(
            f"set incident {ref} {status}",
            lambda: self._client.rput(f"incidents/{ref}", json=body, headers={"From": sender}),
        )

    async def _is_user(self, email: str) -> bool:
        key = email.lower()
        if key not in self._known_users:
            users = await self._call(
                "find user", lambda: self._client.list_all("users", params={"query": key})
            )
            self._known_users[key] = any(
                str(u.get("email", "")).lower() == key for u in users if isinstance(u, dict)
            )
        return self._known_users[key]

    async def _call(self, what: str, call: Any) -> Any:
        try:
            return await asyncio.to_thread(call)
        except pagerduty.HttpError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            raise IntegrationError(
                f"PagerDuty {what} failed: HTTP {status}",
                retryable=status == 429 or status >= 500,
                code=str(status),
            ) from exc
        except (pagerduty.Error, httpx2.HTTPError, OSError) as exc:
            raise IntegrationError(f"PagerDuty {what} failed: {exc}", retryable=True) from exc


def first_level_emails(oncalls: list[Any]) -> list[str]:
    """Emails of the users on call at the lowest escalation level present."""
    entries = [o for o in oncalls if isinstance(o, dict) and isinstance(o.get("user"), dict)]
    if not entries:
        return []
    level = min(int(o.get("escalation_level") or 1) for o in entries)
    emails = [
        str(o["user"]["email"])
        for o in entries
        if int(o.get("escalation_level") or 1) == level and o["user"].get("email")
    ]
    return list(dict.fromkeys(emails))
