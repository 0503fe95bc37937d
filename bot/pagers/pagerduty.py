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
from bot.ports import PageRequest

_OPEN = ("triggered", "acknowledged")


class PagerDutyPager:
    source = "pagerduty"

    def __init__(
        self, token: str, from_email: str | None, base_url: str, ssl_context: ssl.SSLContext
    ) -> None:
        try:
            self._client = pagerduty.RestApiV2Client(
                token, default_from=from_email, base_url=base_url.rstrip("/"), verify=ssl_context
            )
            # The client retries 429 without limit by default, asleep in a
            # worker thread; two quick tries, then the job queue backs off.
            self._client.retry = {429: 2}
            self._client.max_http_attempts = 3
        except pagerduty.UrlError as exc:
            raise IntegrationError(
                f"PAGERDUTY_API_URL must be an https:// URL: {exc}", retryable=False
            ) from exc
        self._from_email = from_email
        # email (lower case) -> PagerDuty user id, or None when no such user.
        self._user_ids: dict[str, str | None] = {}
        # priority name -> id, as the account has them; filled on first use.
        self._priorities: dict[str, str] | None = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)

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
        body = {"incident": {"type": "incident_reference", "status": status}}
        await self._update(ref, body, actor_email, f"set incident {ref} {status}")

    async def set_severity(self, ref: str, severity: int, actor_email: str | None) -> None:
        """Set the incident's priority to the account priority named ``P{severity}``."""
        name = f"P{severity}"
        priorities = await self._priority_ids()
        priority_id = next((pid for pname, pid in priorities.items() if pname.upper() == name), None)
        if priority_id is None:
            raise IntegrationError(
                f"PagerDuty has no priority named {name} (it has {', '.join(priorities)})",
                retryable=False,
            )
        body = {
            "incident": {
                "type": "incident_reference",
                "priority": {"id": priority_id, "type": "priority_reference"},
            }
        }
        await self._update(ref, body, actor_email, f"set incident {ref} priority {name}")

    async def escalate(self, ref: str, actor_email: str | None, escalation: str | None = None) -> str:
        """Move the incident to the next level of its escalation policy."""
        incident = await self._get_incident(ref)
        policy = incident.get("escalation_policy")
        if not isinstance(policy, dict) or not policy.get("id"):
            raise IntegrationError(f"PagerDuty incident {ref} has no escalation policy", retryable=False)
        policy_name = str(policy.get("summary") or policy["id"])
        current, last = await self._escalation_levels(incident, str(policy["id"]))
        target = current + 1
        if last is not None and target > last:
            raise IntegrationError(
                f"PagerDuty incident {ref} is already at the last level ({last}) of {policy_name}",
                retryable=False,
            )
        body = {"incident": {"type": "incident_reference", "escalation_level": target}}
        await self._update(ref, body, actor_email, f"escalate incident {ref}")
        return f"escalated to level {target} of {policy_name}"

    async def add_responder(self, ref: str, email: str, actor_email: str | None) -> None:
        """Add the PagerDuty user with ``email`` to the incident's assignees."""
        user_id = await self._user_id(email, recheck_missing=True)
        if user_id is None:
            raise IntegrationError(f"No PagerDuty user has the email {email}", retryable=False)
        incident = await self._get_incident(ref)
        assignees = _assignee_ids(incident)
        if user_id in assignees:
            return
        body = {
            "incident": {
                "type": "incident_reference",
                "assignments": [
                    {"assignee": {"id": assignee, "type": "user_reference"}}
                    for assignee in [*assignees, user_id]
                ],
            }
        }
        await self._update(ref, body, actor_email, f"add {email} to incident {ref}")

    async def page(self, request: PageRequest, actor_email: str | None) -> str:
        """Open an incident on service ``request.target``; returns its id.

        PagerDuty rejects a second open incident with the same ``incident_key``
        on a service; the open one is then looked up and returned instead.
        """
        sender = await self._sender(actor_email)
        incident: dict[str, Any] = {
            "type": "incident",
            "title": request.title,
            "service": {"id": request.target, "type": "service_reference"},
            "urgency": "high" if request.severity <= 2 else "low",
            "incident_key": request.dedup_key,
        }
        if request.description:
            incident["body"] = {"type": "incident_body", "details": request.description}
        try:
            created = await self._call(
                f"create incident on service {request.target}",
                lambda: self._client.rpost(
                    "incidents", json={"incident": incident}, headers={"From": sender}
                ),
            )
        except IntegrationError as exc:
            if exc.code != "400":
                raise
            existing = await self._open_incident_with_key(request.target, request.dedup_key)
            if existing is None:
                raise
            return existing
        return str(created["id"])

    async def _update(self, ref: str, body: dict[str, Any], actor_email: str | None, what: str) -> None:
        sender = await self._sender(actor_email)
        await self._call(
            what, lambda: self._client.rput(f"incidents/{ref}", json=body, headers={"From": sender})
        )

    async def _sender(self, actor_email: str | None) -> str:
        """The ``From`` address: the actor when they are a PagerDuty user, else
        PAGERDUTY_FROM_EMAIL."""
        if actor_email and await self._is_user(actor_email):
            return actor_email
        if not self._from_email:
            raise IntegrationError(
                "PagerDuty needs a From address: set PAGERDUTY_FROM_EMAIL", retryable=False
            )
        return self._from_email

    async def _get_incident(self, ref: str) -> dict[str, Any]:
        incident = await self._call(f"get incident {ref}", lambda: self._client.rget(f"incidents/{ref}"))
        if not isinstance(incident, dict):
            raise IntegrationError(f"PagerDuty get incident {ref}: unexpected answer", retryable=True)
        return incident

    async def _escalation_levels(self, incident: dict[str, Any], policy_id: str) -> tuple[int, int | None]:
        """(current level, last level known) of the incident in its policy.

        The incident object does not say its level, so it is read from who is
        assigned: the highest level at which an assignee is on call (1 when
        none is). The last level is the highest with someone on call.
        """
        oncalls = await self._call(
            "list on-calls",
            lambda: self._client.list_all("oncalls", params={"escalation_policy_ids[]": [policy_id]}),
        )
        levels: dict[str, set[int]] = {}
        for entry in oncalls:
            if isinstance(entry, dict) and isinstance(entry.get("user"), dict):
                levels.setdefault(str(entry["user"].get("id")), set()).add(
                    int(entry.get("escalation_level") or 1)
                )
        assigned = [level for user in _assignee_ids(incident) for level in levels.get(user, ())]
        last = max((level for user_levels in levels.values() for level in user_levels), default=None)
        return max(assigned, default=1), last

    async def _priority_ids(self) -> dict[str, str]:
        if self._priorities is None:
            try:
                found = await self._call("list priorities", lambda: self._client.list_all("priorities"))
            except IntegrationError as exc:
                if exc.code not in {"402", "404"}:
                    raise
                found = []
            priorities = {
                str(p["name"]): str(p["id"])
                for p in found
                if isinstance(p, dict) and p.get("name") and p.get("id")
            }
            if not priorities:
                raise IntegrationError(
                    "PagerDuty account has no incident priorities (the feature is off or none "
                    "are set up), so the severity cannot be set there",
                    retryable=False,
                )
            self._priorities = priorities
        return self._priorities

    async def _open_incident_with_key(self, service_id: str, key: str) -> str | None:
        found = await self._call(
            "find incident by key",
            lambda: self._client.list_all(
                "incidents",
                params={"incident_key": key, "service_ids[]": [service_id], "statuses[]": list(_OPEN)},
            ),
        )
        for incident in found:
            if isinstance(incident, dict) and incident.get("incident_key") == key:
                return str(incident["id"])
        return None

    async def _is_user(self, email: str) -> bool:
        return await self._user_id(email) is not None

    async def _user_id(self, email: str, *, recheck_missing: bool = False) -> str | None:
        key = email.lower()
        if key not in self._user_ids or (recheck_missing and self._user_ids[key] is None):
            users = await self._call(
                "find user", lambda: self._client.list_all("users", params={"query": key})
            )
            self._user_ids[key] = next(
                (
                    str(u["id"])
                    for u in users
                    if isinstance(u, dict) and str(u.get("email", "")).lower() == key and u.get("id")
                ),
                None,
            )
        return self._user_ids[key]

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


def _assignee_ids(incident: dict[str, Any]) -> list[str]:
    ids = [
        str(a["assignee"]["id"])
        for a in incident.get("assignments") or []
        if isinstance(a, dict) and isinstance(a.get("assignee"), dict) and a["assignee"].get("id")
    ]
    return list(dict.fromkeys(ids))


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
