"""External uptime monitors (``diag monitors``): UptimeRobot, Pingdom, StatusCake.

For each of the service's checks: its current state, recent results per
region/probe, and a verdict — a global outage (every region that reported
sees it down), a regional one (only some do), healthy, or unknown.

The vendor JSON is read by pure functions (``parse_*``), so the rules are
tested without HTTP; the small clients only fetch (base URLs are
configurable, so tests point them at local servers). Where a vendor gives no
per-region results (UptimeRobot's v2 API), the vendor's own state decides:
UptimeRobot confirms "down" from several locations before reporting it
(status 9), while "seems down" (status 8) means one location saw a failure
that the others have not confirmed yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx

from bot.diagnostics.api_fetch import fetch_json, gather_all
from bot.diagnostics.finding_model import Finding, Severity, sort_findings
from bot.errors import IntegrationError, UserError

UPTIMEROBOT_URL = "https://api.uptimerobot.com/v2"
PINGDOM_URL = "https://api.pingdom.com/api/3.1"
STATUSCAKE_URL = "https://api.statuscake.com/v1"

_MAX_PAGES = 20
_CONCURRENCY = 4


class CheckState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNCONFIRMED = "unconfirmed-down"
    PAUSED = "paused"
    UNKNOWN = "unknown"


class Verdict(StrEnum):
    GLOBAL_OUTAGE = "global-outage"
    REGIONAL = "regional"
    HEALTHY = "healthy"
    UNKNOWN = "unknown"


_VERDICT_ORDER = [Verdict.GLOBAL_OUTAGE, Verdict.REGIONAL, Verdict.HEALTHY, Verdict.UNKNOWN]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One test run from one probe; ``up`` is None when the vendor could not tell."""

    at: float | None
    region: str
    probe: str
    up: bool | None
    detail: str = ""
    response_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso_time(self.at),
            "region": self.region,
            "probe": self.probe,
            "up": self.up,
            "detail": self.detail,
            "response_ms": self.response_ms,
        }


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """A state change in the vendor's log (UptimeRobot ``logs``)."""

    at: float | None
    kind: str
    duration_s: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso_time(self.at),
            "kind": self.kind,
            "duration_s": self.duration_s,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class MonitorCheck:
    provider: str
    id: str
    name: str
    target: str
    state: CheckState
    last_checked: float | None = None
    response_ms: float | None = None
    results: tuple[ProbeResult, ...] = ()
    events: tuple[MonitorEvent, ...] = ()

    def matches(self, text: str | None) -> bool:
        if not text:
            return True
        needle = text.lower()
        return needle in self.name.lower() or needle in self.target.lower()

    def with_results(self, results: Iterable[ProbeResult]) -> MonitorCheck:
        return MonitorCheck(
            self.provider,
            self.id,
            self.name,
            self.target,
            self.state,
            self.last_checked,
            self.response_ms,
            tuple(results),
            self.events,
        )


@dataclass(frozen=True, slots=True)
class RegionStatus:
    region: str
    latest_up: bool | None
    latest_at: float | None
    up: int
    down: int
    probes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "latest_up": self.latest_up,
            "latest_at": iso_time(self.latest_at),
            "up": self.up,
            "down": self.down,
            "probes": list(self.probes),
        }


@dataclass(frozen=True, slots=True)
class CheckAssessment:
    check: MonitorCheck
    verdict: Verdict
    reason: str
    regions: tuple[RegionStatus, ...] = ()

    @property
    def failing_regions(self) -> list[str]:
        return [region.region for region in self.regions if region.latest_up is False]

    def to_dict(self) -> dict[str, Any]:
        check = self.check
        return {
            "provider": check.provider,
            "id": check.id,
            "name": check.name,
            "target": check.target,
            "state": check.state.value,
            "last_checked": iso_time(check.last_checked),
            "response_ms": check.response_ms,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "failing_regions": self.failing_regions,
            "regions": [region.to_dict() for region in self.regions],
            "results": [result.to_dict() for result in check.results],
            "events": [event.to_dict() for event in check.events],
        }


def iso_time(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------- verdicts


def region_statuses(results: Sequence[ProbeResult]) -> tuple[RegionStatus, ...]:
    """Per region: the latest result (by time; later in the list wins ties) and up/down counts."""
    by_region: dict[str, list[ProbeResult]] = {}
    for result in results:
        by_region.setdefault(result.region, []).append(result)
    statuses: list[RegionStatus] = []
    for region in sorted(by_region):
        entries = by_region[region]
        latest = max(enumerate(entries), key=lambda pair: (pair[1].at or 0.0, -pair[0]))[1]
        statuses.append(
            RegionStatus(
                region=region,
                latest_up=latest.up,
                latest_at=latest.at,
                up=sum(1 for entry in entries if entry.up is True),
                down=sum(1 for entry in entries if entry.up is False),
                probes=tuple(dict.fromkeys(entry.probe for entry in entries)),
            )
        )
    return tuple(statuses)


def assess_check(check: MonitorCheck) -> CheckAssessment:
    """Global outage, regional, healthy or unknown, with the reason in plain words."""
    regions = region_statuses(check.results)
    if check.state is CheckState.PAUSED:
        return CheckAssessment(check, Verdict.UNKNOWN, "the check is paused", regions)
    known = [region for region in regions if region.latest_up is not None]
    if known:
        failing = [region.region for region in known if region.latest_up is False]
        if failing and len(failing) == len(known):
            reason = f"down from every region that reported ({len(known)}: {', '.join(failing)})"
            return CheckAssessment(check, Verdict.GLOBAL_OUTAGE, reason, regions)
        if failing:
            fine = [region.region for region in known if region.latest_up]
            reason = (
                f"down from {len(failing)} of {len(known)} regions ({', '.join(failing)}); "
                f"up from {', '.join(fine)}"
            )
            return CheckAssessment(check, Verdict.REGIONAL, reason, regions)
        reason = f"up from all {len(known)} regions"
        if check.state in (CheckState.DOWN, CheckState.UNCONFIRMED):
            reason += f" (the check itself still says {check.state.value})"
        return CheckAssessment(check, Verdict.HEALTHY, reason, regions)
    if check.state is CheckState.DOWN:
        reason = f"{check.provider} reports it down (confirmed; no per-region results)"
        return CheckAssessment(check, Verdict.GLOBAL_OUTAGE, reason, regions)
    if check.state is CheckState.UNCONFIRMED:
        reason = f"{check.provider} saw it down from one location, not yet confirmed by the others"
        return CheckAssessment(check, Verdict.REGIONAL, reason, regions)
    if check.state is CheckState.UP:
        return CheckAssessment(check, Verdict.HEALTHY, f"{check.provider} reports it up", regions)
    return CheckAssessment(check, Verdict.UNKNOWN, "not checked yet, or the state is unknown", regions)


def overall_verdict(assessments: Iterable[CheckAssessment]) -> Verdict:
    verdicts = {assessment.verdict for assessment in assessments}
    for verdict in _VERDICT_ORDER:
        if verdict in verdicts:
            return verdict
    return Verdict.UNKNOWN


def _finding(assessment: CheckAssessment) -> Finding | None:
    check = assessment.check
    subject = f"{check.provider} {check.name}"
    if assessment.verdict is Verdict.GLOBAL_OUTAGE:
        return Finding(
            "global-outage",
            Severity.CRITICAL,
            subject,
            assessment.reason,
            "Failing everywhere points at the service itself (or its DNS/TLS), not at one network path.",
        )
    if assessment.verdict is Verdict.REGIONAL:
        return Finding(
            "regional-outage",
            Severity.WARNING,
            subject,
            assessment.reason,
            "Failing from some regions only points at routing, a CDN/edge location, DNS in those "
            "regions, or one of several data centres.",
        )
    if assessment.verdict is Verdict.UNKNOWN:
        return Finding("unknown-state", Severity.INFO, subject, assessment.reason)
    return None


@dataclass(frozen=True, slots=True)
class MonitorsReport:
    assessments: tuple[CheckAssessment, ...]
    errors: tuple[tuple[str, str], ...] = ()

    @property
    def verdict(self) -> Verdict:
        return overall_verdict(self.assessments)

    @property
    def findings(self) -> list[Finding]:
        found = [_finding(assessment) for assessment in self.assessments]
        return sort_findings([finding for finding in found if finding is not None])

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "checks": [assessment.to_dict() for assessment in self.assessments],
            "errors": [{"provider": provider, "error": error} for provider, error in self.errors],
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def summary(self) -> str:
        lines = [f"verdict: {self.verdict.value} ({len(self.assessments)} check(s))"]
        for assessment in self.assessments:
            check = assessment.check
            lines.append(
                f"{check.provider} {check.name} [{check.state.value}] {assessment.verdict.value}: "
                f"{assessment.reason}"
            )
        for provider, error in self.errors:
            lines.append(f"{provider}: {error}")
        return "\n".join(lines)


# --------------------------------------------------------------------- vendor JSON (pure)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


UPTIMEROBOT_STATES = {
    0: CheckState.PAUSED,
    1: CheckState.UNKNOWN,
    2: CheckState.UP,
    8: CheckState.UNCONFIRMED,
    9: CheckState.DOWN,
}
UPTIMEROBOT_LOG_TYPES = {1: "down", 2: "up", 98: "started", 99: "paused"}


def parse_uptimerobot_monitors(payload: Any) -> tuple[list[MonitorCheck], int]:
    """``POST /v2/getMonitors`` → (checks, total monitors in the account)."""
    body = _dict(payload, "getMonitors answer")
    if body.get("stat") != "ok":
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise ValueError(str(message or "stat is not ok"))
    checks: list[MonitorCheck] = []
    for raw in _list(body.get("monitors", []), "monitors"):
        monitor = _dict(raw, "monitor")
        events: list[MonitorEvent] = []
        for raw_log in monitor.get("logs") or []:
            log = _dict(raw_log, "log")
            reason = log.get("reason")
            detail = ""
            if isinstance(reason, dict):
                detail = " ".join(str(reason.get(key) or "") for key in ("code", "detail")).strip()
            kind = UPTIMEROBOT_LOG_TYPES.get(int(_number(log.get("type")) or 0), f"type {log.get('type')}")
            events.append(
                MonitorEvent(_number(log.get("datetime")), kind, _number(log.get("duration")), detail)
            )
        times = [_dict(item, "response time") for item in monitor.get("response_times") or []]
        latest = max(times, key=lambda item: _number(item.get("datetime")) or 0.0, default=None)
        status = int(_number(monitor.get("status")) or 1)
        checks.append(
            MonitorCheck(
                provider="UptimeRobot",
                id=str(monitor.get("id", "")),
                name=str(monitor.get("friendly_name") or monitor.get("url") or monitor.get("id")),
                target=str(monitor.get("url") or ""),
                state=UPTIMEROBOT_STATES.get(status, CheckState.UNKNOWN),
                last_checked=_number(latest.get("datetime")) if latest else None,
                response_ms=_number(latest.get("value")) if latest else None,
                events=tuple(sorted(events, key=lambda event: -(event.at or 0.0))),
            )
        )
    pagination = body.get("pagination")
    total = int(_number(pagination.get("total")) or 0) if isinstance(pagination, dict) else len(checks)
    return checks, total


PINGDOM_STATES = {
    "up": CheckState.UP,
    "down": CheckState.DOWN,
    "unconfirmed_down": CheckState.UNCONFIRMED,
    "unknown": CheckState.UNKNOWN,
    "paused": CheckState.PAUSED,
}


def parse_pingdom_checks(payload: Any) -> list[MonitorCheck]:
    """``GET /api/3.1/checks`` → checks without results."""
    checks: list[MonitorCheck] = []
    for raw in _list(_dict(payload, "checks answer").get("checks"), "checks"):
        check = _dict(raw, "check")
        checks.append(
            MonitorCheck(
                provider="Pingdom",
                id=str(check.get("id", "")),
                name=str(check.get("name") or check.get("hostname") or check.get("id")),
                target=str(check.get("hostname") or ""),
                state=PINGDOM_STATES.get(str(check.get("status")), CheckState.UNKNOWN),
                last_checked=_number(check.get("lasttesttime")),
                response_ms=_number(check.get("lastresponsetime")),
            )
        )
    return checks


def parse_pingdom_probes(payload: Any) -> dict[str, tuple[str, str]]:
    """``GET /api/3.1/probes`` → probe id → (probe name, region)."""
    probes: dict[str, tuple[str, str]] = {}
    for raw in _list(_dict(payload, "probes answer").get("probes"), "probes"):
        probe = _dict(raw, "probe")
        name = str(probe.get("name") or probe.get("city") or probe.get("id"))
        region = str(probe.get("region") or probe.get("countryiso") or probe.get("country") or name)
        probes[str(probe.get("id"))] = (name, region)
    return probes


def parse_pingdom_results(payload: Any, probes: dict[str, tuple[str, str]]) -> list[ProbeResult]:
    """``GET /api/3.1/results/{checkid}`` → results, probes mapped to their regions."""
    results: list[ProbeResult] = []
    for raw in _list(_dict(payload, "results answer").get("results"), "results"):
        result = _dict(raw, "result")
        probe_id = str(result.get("probeid"))
        name, region = probes.get(probe_id, (f"probe {probe_id}", f"probe {probe_id}"))
        status = str(result.get("status"))
        up = True if status == "up" else False if status in ("down", "unconfirmed_down") else None
        results.append(
            ProbeResult(
                at=_number(result.get("time")),
                region=region,
                probe=name,
                up=up,
                detail=str(result.get("statusdesc") or status),
                response_ms=_number(result.get("responsetime")),
            )
        )
    return results


def parse_statuscake_checks(payload: Any) -> tuple[list[MonitorCheck], int]:
    """``GET /v1/uptime`` → (checks without results, page count)."""
    body = _dict(payload, "uptime answer")
    checks: list[MonitorCheck] = []
    for raw in _list(body.get("data"), "data"):
        test = _dict(raw, "uptime check")
        state = (
            CheckState.PAUSED
            if test.get("paused")
            else {
                "up": CheckState.UP,
                "down": CheckState.DOWN,
            }.get(str(test.get("status")), CheckState.UNKNOWN)
        )
        checks.append(
            MonitorCheck(
                provider="StatusCake",
                id=str(test.get("id", "")),
                name=str(test.get("name") or test.get("website_url") or test.get("id")),
                target=str(test.get("website_url") or ""),
                state=state,
            )
        )
    metadata = body.get("metadata")
    pages = int(_number(metadata.get("page_count")) or 1) if isinstance(metadata, dict) else 1
    return checks, pages


def _timestamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return _number(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # The API writes UTC; a timestamp without an offset must not be read as local time.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_statuscake_history(payload: Any) -> list[ProbeResult]:
    """``GET /v1/uptime/{id}/history`` → results; a run is up when it got a status below 400."""
    results: list[ProbeResult] = []
    for raw in _list(_dict(payload, "history answer").get("data"), "data"):
        run = _dict(raw, "history entry")
        code = int(_number(run.get("status_code")) or 0)
        location = str(run.get("location") or "unknown")
        results.append(
            ProbeResult(
                at=_timestamp(run.get("created_at")),
                region=location,
                probe=location,
                up=0 < code < 400,
                detail=f"HTTP {code}" if code else "no response",
                response_ms=_number(run.get("performance")),
            )
        )
    return results


# --------------------------------------------------------------------- clients


class MonitorProvider(Protocol):
    name: str

    async def checks(self, match: str | None, results: int) -> list[MonitorCheck]:
        """The account's checks whose name or target contains ``match``, with recent results."""
        ...


def _vendor_error(provider: str, exc: ValueError) -> IntegrationError:
    return IntegrationError(f"{provider}: unexpected answer: {exc}", retryable=False)


async def _bounded(tasks: Iterable[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(_CONCURRENCY)

    async def run(task: Any) -> Any:
        async with semaphore:
            return await task

    return await gather_all(*(run(task) for task in tasks))


class _BearerApi:
    """A REST API answering GETs with JSON to a bearer token (Pingdom, StatusCake)."""

    name = ""

    def __init__(self, client: httpx.AsyncClient, token: str, base_url: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {token}"}
        self._base = base_url.rstrip("/")

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        return await fetch_json(
            self._client,
            "GET",
            f"{self._base}{path}",
            service=self.name,
            params=params,
            headers=self._headers,
        )


class UptimeRobotClient:
    name = "UptimeRobot"

    def __init__(self, client: httpx.AsyncClient, api_key: str, base_url: str = UPTIMEROBOT_URL) -> None:
        self._client = client
        self._key = api_key
        self._base = base_url.rstrip("/")

    async def checks(self, match: str | None, results: int) -> list[MonitorCheck]:
        found: list[MonitorCheck] = []
        offset, limit = 0, 50
        for _ in range(_MAX_PAGES):
            payload = await fetch_json(
                self._client,
                "POST",
                f"{self._base}/getMonitors",
                service=self.name,
                data={
                    "api_key": self._key,
                    "format": "json",
                    "logs": 1,
                    "logs_limit": results,
                    "response_times": 1,
                    "response_times_limit": results,
                    "offset": offset,
                    "limit": limit,
                },
            )
            try:
                page, total = parse_uptimerobot_monitors(payload)
            except ValueError as exc:
                raise _vendor_error(self.name, exc) from exc
            found.extend(check for check in page if check.matches(match))
            offset += limit
            if not page or offset >= total:
                break
        return found


class PingdomClient(_BearerApi):
    name = "Pingdom"

    def __init__(self, client: httpx.AsyncClient, token: str, base_url: str = PINGDOM_URL) -> None:
        super().__init__(client, token, base_url)

    async def checks(self, match: str | None, results: int) -> list[MonitorCheck]:
        checks_payload, probes_payload = await gather_all(self._get("/checks"), self._get("/probes"))
        try:
            checks = [check for check in parse_pingdom_checks(checks_payload) if check.matches(match)]
            probes = parse_pingdom_probes(probes_payload)
        except ValueError as exc:
            raise _vendor_error(self.name, exc) from exc
        payloads = await _bounded(self._get(f"/results/{check.id}", {"limit": results}) for check in checks)
        try:
            return [
                check.with_results(parse_pingdom_results(payload, probes))
                for check, payload in zip(checks, payloads, strict=True)
            ]
        except ValueError as exc:
            raise _vendor_error(self.name, exc) from exc


class StatusCakeClient(_BearerApi):
    name = "StatusCake"

    def __init__(self, client: httpx.AsyncClient, token: str, base_url: str = STATUSCAKE_URL) -> None:
        super().__init__(client, token, base_url)

    async def checks(self, match: str | None, results: int) -> list[MonitorCheck]:
        checks: list[MonitorCheck] = []
        page, pages = 1, 1
        while page <= min(pages, _MAX_PAGES):
            payload = await self._get("/uptime", {"page": page, "limit": 100})
            try:
                found, pages = parse_statuscake_checks(payload)
            except ValueError as exc:
                raise _vendor_error(self.name, exc) from exc
            checks.extend(check for check in found if check.matches(match))
            page += 1
        payloads = await _bounded(
            self._get(f"/uptime/{check.id}/history", {"limit": results}) for check in checks
        )
        try:
            return [
                check.with_results(parse_statuscake_history(payload))
                for check, payload in zip(checks, payloads, strict=True)
            ]
        except ValueError as exc:
            raise _vendor_error(self.name, exc) from exc


async def check_monitors(
    providers: Sequence[MonitorProvider], *, match: str | None = None, results: int = 20
) -> MonitorsReport:
    """Ask every provider; one failing provider is reported, all failing raises."""
    if not providers:
        raise UserError(
            "no monitor provider configured: give an UptimeRobot key, a Pingdom or a StatusCake token"
        )

    async def ask(provider: MonitorProvider) -> list[MonitorCheck] | IntegrationError:
        try:
            return await provider.checks(match, results)
        except IntegrationError as exc:
            return exc

    answers = await asyncio.gather(*(ask(provider) for provider in providers))
    errors = [
        (p.name, str(a)) for p, a in zip(providers, answers, strict=True) if isinstance(a, IntegrationError)
    ]
    failures = [answer for answer in answers if isinstance(answer, IntegrationError)]
    if failures and len(failures) == len(providers):
        raise failures[0]
    checks = [check for answer in answers if not isinstance(answer, IntegrationError) for check in answer]
    if not checks and match:
        raise UserError(f"no monitor check matches {match!r}")
    return MonitorsReport(tuple(assess_check(check) for check in checks), tuple(errors))
