"""The Atlassian Statuspage mirror: one firebell notice → one Statuspage incident update.

This module owns everything firebell says to Statuspage's REST API
(https://developer.statuspage.io): the rate limiter for an API key, the
mapping from a notice's status, impact and components to Statuspage's fields,
the HTTP client that turns Statuspage's answers into firebell's errors, and the
``statuspage`` channel's :class:`~bot.notices.sender.Sender`.

The first notice of a firebell incident creates a Statuspage incident; later
notices update that same incident. The pairing (firebell incident →
Statuspage incident id) lives in the database, behind the ``lookup`` and
``remember`` callbacks, so it survives restarts and is shared by replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx

from bot.clock import Clock, SystemClock
from bot.diagnostics.headers import parse_retry_after
from bot.errors import IntegrationError
from bot.notices.config import StatuspageConfig
from bot.notices.model import Impact, NoticeStatus, Outgoing
from bot.notices.sender import Commit, DeliveryFailed, DeliveryUncertain

log = logging.getLogger(__name__)

ComponentStatus = Literal[
    "operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage"
]

# Statuspage refuses incident names longer than this.
NAME_LIMIT = 255
# Statuspage answered 420 before it switched to 429 (2021) and still may.
_RATE_LIMITED = frozenset({420, 429})
# Transport errors raised before a byte of the request reached Statuspage.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)
_IMPACT_TO_COMPONENT: dict[Impact, ComponentStatus] = {
    Impact.MINOR: "degraded_performance",
    Impact.MAJOR: "partial_outage",
    Impact.CRITICAL: "major_outage",
}


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class NoticeFacts:
    """What the Statuspage mirror needs of a notice besides its rendered text.

    ``Outgoing`` carries only the subject and body, so the sender asks for these
    by notice id (the database backs the ``facts`` callback).
    """

    incident_id: int
    """The firebell incident the notice belongs to."""
    status: NoticeStatus
    impact: Impact
    components: tuple[str, ...] = ()
    """firebell component names, as in ``[notices] components``."""


@dataclass(frozen=True)
class IncidentFields:
    """One Statuspage incident body (create or update), already mapped."""

    name: str
    status: NoticeStatus
    impact_override: Impact
    body: str
    component_ids: tuple[str, ...] = ()
    components: Mapping[str, ComponentStatus] = field(default_factory=dict)
    deliver_notifications: bool = True

    def to_json(self) -> dict[str, Any]:
        incident: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "impact_override": self.impact_override.value,
            "body": self.body,
            "deliver_notifications": self.deliver_notifications,
        }
        # An empty list would clear the affected components a previous notice set.
        if self.component_ids:
            incident["component_ids"] = list(self.component_ids)
        if self.components:
            incident["components"] = dict(self.components)
        return {"incident": incident}


@dataclass(frozen=True)
class Mapped:
    fields: IncidentFields
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class StatuspageOutcome:
    """What one delivery did on Statuspage."""

    statuspage_incident_id: str
    created: bool
    """True when this delivery created the Statuspage incident (first notice, or recreated after a 404)."""
    warnings: tuple[str, ...] = ()
    """Things the commander should know, e.g. components with no Statuspage id."""


def component_status(status: NoticeStatus, impact: Impact) -> ComponentStatus | None:
    """The Statuspage component status a notice implies; None leaves components as they are.

    A resolved notice puts its components back to operational; otherwise the
    impact decides. Impact ``none`` names the components as affected without
    changing how the page shows them.
    """
    if status is NoticeStatus.RESOLVED:
        return "operational"
    return _IMPACT_TO_COMPONENT.get(impact)


def map_notice(
    facts: NoticeFacts,
    *,
    name: str,
    body: str,
    component_ids: Mapping[str, str],
    deliver_notifications: bool = True,
) -> Mapped:
    """A notice's facts and text as Statuspage incident fields (pure).

    Components the config does not map are left out and named in a warning.
    """
    known: list[str] = []
    unknown: list[str] = []
    for component in facts.components:
        target = component_ids.get(component)
        if target is None:
            if component not in unknown:
                unknown.append(component)
        elif target not in known:
            known.append(target)
    warnings: tuple[str, ...] = ()
    if unknown:
        warnings = (
            "Statuspage: skipped components with no Statuspage id in [notices.statuspage] components: "
            + ", ".join(unknown),
        )
    new_status = component_status(facts.status, facts.impact)
    clean_name = " ".join(name.split()) or f"Incident {facts.incident_id}"
    if len(clean_name) > NAME_LIMIT:
        clean_name = clean_name[: NAME_LIMIT - 1] + "…"
    return Mapped(
        IncidentFields(
            name=clean_name,
            status=facts.status,
            impact_override=facts.impact,
            body=body,
            component_ids=tuple(known),
            components={cid: new_status for cid in known} if new_status is not None else {},
            deliver_notifications=deliver_notifications,
        ),
        warnings,
    )


# --------------------------------------------------------------------------- rate limiting


class RequestLimiter:
    """Spaces requests at least ``interval`` seconds apart (Statuspage: 1/s per API key).

    Share one limiter among everything that uses the same API key. ``now`` is a
    monotonic clock in seconds and ``sleep`` waits; tests hand in their own
    pair so nothing waits for real.
    """

    def __init__(
        self,
        interval: float = 1.0,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._now = now
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for this caller's turn; callers are served in arrival order."""
        async with self._lock:
            wait = self._next - self._now()
            if wait > 0:
                await self._sleep(wait)
            self._next = max(self._now(), self._next) + self.interval

    def hold(self, seconds: float) -> None:
        """Let no request through for ``seconds`` from now (the service asked us to back off)."""
        self._next = max(self._next, self._now() + seconds)


# --------------------------------------------------------------------------- HTTP client


class IncidentNotFound(IntegrationError):
    """The Statuspage incident to update does not exist (deleted on Statuspage)."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(f"Statuspage incident {incident_id} not found", retryable=False, code="404")
        self.incident_id = incident_id


BeforeSend = Callable[[], Awaitable[None]]


class StatuspageClient:
    """The few Statuspage REST calls firebell makes, with its errors mapped.

    The client takes ownership of ``client`` (``aclose`` closes it). Every
    request waits for ``limiter`` first. ``before_send``, when given, runs
    after that wait and right before the request leaves, so a caller can mark
    the point after which Statuspage may have changed.
    """

    def __init__(
        self,
        config: StatuspageConfig,
        api_key: str,
        client: httpx.AsyncClient,
        *,
        limiter: RequestLimiter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._api_key = api_key
        self._client = client
        self._limiter = limiter if limiter is not None else RequestLimiter()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._base = config.api_url.rstrip("/")

    @property
    def page_id(self) -> str:
        return self.config.page_id

    async def aclose(self) -> None:
        await self._client.aclose()

    async def create_incident(self, fields: IncidentFields, *, before_send: BeforeSend | None = None) -> str:
        """Create an incident on the configured page; returns its Statuspage id."""
        response = await self._request(
            "POST", f"/pages/{_seg(self.page_id)}/incidents", fields.to_json(), before_send
        )
        if response.status_code == 404:
            raise self._refused(
                response, f"page {self.page_id!r} not found (check [notices.statuspage] page_id)"
            )
        self._raise_for_status(response)
        incident_id = _json(response).get("id")
        if not isinstance(incident_id, str) or not incident_id:
            raise IntegrationError(
                f"Statuspage: HTTP {response.status_code} for a new incident without an id", retryable=False
            )
        return incident_id

    async def update_incident(
        self, incident_id: str, fields: IncidentFields, *, before_send: BeforeSend | None = None
    ) -> None:
        """Update an incident; raises :class:`IncidentNotFound` when Statuspage has no such incident."""
        response = await self._request(
            "PATCH",
            f"/pages/{_seg(self.page_id)}/incidents/{_seg(incident_id)}",
            fields.to_json(),
            before_send,
        )
        if response.status_code == 404:
            raise IncidentNotFound(incident_id)
        self._raise_for_status(response)

    async def set_component_status(
        self, component_id: str, status: ComponentStatus, *, before_send: BeforeSend | None = None
    ) -> None:
        """Set one component's status outside an incident."""
        response = await self._request(
            "PATCH",
            f"/pages/{_seg(self.page_id)}/components/{_seg(component_id)}",
            {"component": {"status": status}},
            before_send,
        )
        if response.status_code == 404:
            raise self._refused(response, f"component {component_id!r} not found on page {self.page_id!r}")
        self._raise_for_status(response)

    async def _request(
        self, method: str, path: str, body: dict[str, Any], before_send: BeforeSend | None
    ) -> httpx.Response:
        await self._limiter.acquire()
        if before_send is not None:
            await before_send()
        try:
            response = await self._client.request(
                method,
                self._base + path,
                json=body,
                headers={"Authorization": f"OAuth {self._api_key}", "Accept": "application/json"},
            )
        except _NOT_SENT as exc:
            # Statuspage never saw the request: trying again later is safe.
            raise IntegrationError(
                f"Statuspage: {method} {path} failed before reaching Statuspage: {type(exc).__name__}: {exc}",
                retryable=True,
            ) from exc
        except httpx.HTTPError as exc:
            # The request may have been applied (a read timeout after a create, say);
            # trying again could post the update twice, so it counts as sent.
            raise DeliveryUncertain(
                f"Statuspage: {method} {path}: {type(exc).__name__} after the request was sent"
            ) from exc
        except httpx.InvalidURL as exc:
            raise DeliveryFailed(
                f"Statuspage: bad [notices.statuspage] api_url {self.config.api_url!r}: {exc}", permanent=True
            ) from exc
        if response.status_code in _RATE_LIMITED:
            raise self._rate_limited(response)
        if response.status_code in (401, 403):
            raise DeliveryFailed(
                f"Statuspage refused the API key from secret {self.config.api_key_secret!r} "
                f"(HTTP {response.status_code}); check that the key is valid and may write to page "
                f"{self.page_id!r}",
                permanent=True,
            )
        return response

    def _rate_limited(self, response: httpx.Response) -> IntegrationError:
        header = response.headers.get("Retry-After")
        retry_after = parse_retry_after(header, self._clock.now())
        # Hold every later request on this key too, not just the one that was refused.
        self._limiter.hold(retry_after if retry_after is not None else self._limiter.interval)
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        return IntegrationError(
            f"Statuspage: rate limited (HTTP {response.status_code}){wait}",
            retryable=True,
            retry_after=retry_after,
            code=str(response.status_code),
        )

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status >= 500 or status == 408:
            raise IntegrationError(
                f"Statuspage: HTTP {status}: {_detail(response)}", retryable=True, code=str(status)
            )
        raise self._refused(response, _detail(response))

    @staticmethod
    def _refused(response: httpx.Response, detail: str) -> DeliveryFailed:
        return DeliveryFailed(
            f"Statuspage refused the notice (HTTP {response.status_code}): {detail}", permanent=True
        )


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise IntegrationError(
            f"Statuspage: HTTP {response.status_code} with a body that is not JSON", retryable=False
        ) from exc
    if not isinstance(data, dict):
        raise IntegrationError(
            f"Statuspage: HTTP {response.status_code} with unexpected JSON", retryable=False
        )
    return data


def _detail(response: httpx.Response) -> str:
    """Statuspage's own error text (``{"error": …}``), short."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        error = data.get("error", data) if isinstance(data, dict) else data
        text = "; ".join(str(e) for e in error) if isinstance(error, list) else str(error)
    return text[:300] or response.reason_phrase


# --------------------------------------------------------------------------- sender

Facts = Callable[[int], Awaitable[NoticeFacts]]
Lookup = Callable[[int], Awaitable[str | None]]
Remember = Callable[[int, str], Awaitable[None]]


class StatuspageSender:
    """The ``statuspage`` channel: mirror each notice onto one Statuspage incident.

    ``facts(notice_id)`` gives the notice's incident, status, impact and
    components; ``lookup(incident_id)`` / ``remember(incident_id,
    statuspage_incident_id)`` keep the pairing durable. The outbox row's
    ``target`` is the page id.
    """

    channel: ClassVar[str] = "statuspage"

    def __init__(
        self,
        client: StatuspageClient,
        *,
        facts: Facts,
        lookup: Lookup,
        remember: Remember,
        deliver_notifications: bool = True,
    ) -> None:
        self._client = client
        self._facts = facts
        self._lookup = lookup
        self._remember = remember
        self._deliver_notifications = deliver_notifications
        # Two notices of one incident sent at once would both see "no incident
        # yet" and create two; within a process they take turns.
        self._locks: dict[int, asyncio.Lock] = {}

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, message: Outgoing, commit: Commit) -> None:
        outcome = await self.deliver(message, commit)
        for warning in outcome.warnings:
            log.warning("notice %s: %s", message.notice_id, warning)

    async def deliver(self, message: Outgoing, commit: Commit) -> StatuspageOutcome:
        """``send`` that also says what happened (incident id, created or not, warnings)."""
        if message.target != self._client.page_id:
            raise DeliveryFailed(
                f"Statuspage: the delivery is for page {message.target!r} but "
                f"[notices.statuspage] page_id is {self._client.page_id!r}",
                permanent=True,
            )
        facts = await self._facts(message.notice_id)
        mapped = map_notice(
            facts,
            name=message.subject,
            body=message.text,
            component_ids=self._client.config.components,
            deliver_notifications=self._deliver_notifications,
        )
        lock = self._locks.setdefault(facts.incident_id, asyncio.Lock())
        async with lock:
            return await self._deliver(facts.incident_id, mapped, _Once(commit))

    async def _deliver(self, incident_id: int, mapped: Mapped, commit: _Once) -> StatuspageOutcome:
        existing = await self._lookup(incident_id)
        if existing is not None:
            try:
                await self._client.update_incident(existing, mapped.fields, before_send=commit)
            except IncidentNotFound:
                # Deleted on Statuspage: start a fresh incident, once.
                log.info(
                    "Statuspage incident %s is gone; creating a new one for incident %s",
                    existing,
                    incident_id,
                )
            else:
                return StatuspageOutcome(existing, created=False, warnings=mapped.warnings)
        created = await self._client.create_incident(mapped.fields, before_send=commit)
        await self._remember(incident_id, created)
        return StatuspageOutcome(created, created=True, warnings=mapped.warnings)


class _Once:
    """Calls ``commit`` the first time only: the first changing request marks the delivery."""

    def __init__(self, commit: Commit) -> None:
        self._commit = commit
        self._done = False

    async def __call__(self) -> None:
        if not self._done:
            self._done = True
            await self._commit()
