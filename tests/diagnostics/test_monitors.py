"""``diag monitors``: UptimeRobot, Pingdom and StatusCake as local servers speaking their JSON.

Each fake checks the credential the way the vendor does (UptimeRobot: the
``api_key`` form field, answering ``stat: fail``; Pingdom and StatusCake: a
Bearer token, answering 401) and serves one account with a globally failing
shop, a regionally failing API, a healthy blog and a paused check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from typer.testing import CliRunner

from bot.diagnostics.finding_model import Severity
from bot.diagnostics.monitors import (
    CheckState,
    MonitorCheck,
    PingdomClient,
    ProbeResult,
    StatusCakeClient,
    UptimeRobotClient,
    Verdict,
    assess_check,
    check_monitors,
    parse_statuscake_history,
    parse_uptimerobot_monitors,
    region_statuses,
)
from bot.errors import IntegrationError, UserError
from handlers.cli import cli
from tests.fakes.base import FakeServer, RecordedRequest

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
KEY = "u1234567-0123456789abcdef"
TOKEN = "token-abc"


class FakeUptimeRobot(FakeServer):
    """``POST /v2/getMonitors`` (form body), paginated with offset/limit like the real API."""

    def __init__(self, monitors: list[dict[str, Any]]) -> None:
        super().__init__()
        self.monitors = monitors

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if request.path != "/v2/getMonitors" or request.method != "POST":
            return web.json_response({"stat": "fail", "error": {"type": "not_found"}}, status=404)
        if request.body.get("api_key") != KEY:
            return web.json_response(
                {
                    "stat": "fail",
                    "error": {
                        "type": "invalid_parameter",
                        "parameter_name": "api_key",
                        "passed_value": request.body.get("api_key"),
                        "message": "api_key is invalid.",
                    },
                }
            )
        offset, limit = int(request.body.get("offset", 0)), min(int(request.body.get("limit", 50)), 50)
        page = self.monitors[offset : offset + limit]
        return web.json_response(
            {
                "stat": "ok",
                "pagination": {"offset": offset, "limit": limit, "total": len(self.monitors)},
                "monitors": page,
            }
        )


def uptimerobot_monitor(
    id_: int, name: str, status: int, *, logs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "id": id_,
        "friendly_name": name,
        "url": f"https://{name}.example.test/",
        "type": 1,
        "sub_type": "",
        "keyword_type": None,
        "keyword_value": "",
        "http_username": "",
        "http_password": "",
        "port": "",
        "interval": 300,
        "status": status,
        "create_datetime": NOW - 86400 * 90,
        "logs": logs or [],
        "response_times": [
            {"datetime": NOW - 600, "value": 240},
            {"datetime": NOW - 300, "value": 812},
        ],
    }


PROBES = [
    {
        "id": 1,
        "country": "United States",
        "city": "New York",
        "name": "New York, NY",
        "active": True,
        "hostname": "s101.pingdom.com",
        "ip": "192.0.2.1",
        "countryiso": "US",
        "region": "NA",
    },
    {
        "id": 2,
        "country": "Germany",
        "city": "Frankfurt",
        "name": "Frankfurt, DE",
        "active": True,
        "hostname": "s202.pingdom.com",
        "ip": "192.0.2.2",
        "countryiso": "DE",
        "region": "EU",
    },
    {
        "id": 3,
        "country": "Singapore",
        "city": "Singapore",
        "name": "Singapore",
        "active": True,
        "hostname": "s303.pingdom.com",
        "ip": "192.0.2.3",
        "countryiso": "SG",
        "region": "APAC",
    },
    {
        "id": 4,
        "country": "United Kingdom",
        "city": "London",
        "name": "London, UK",
        "active": True,
        "hostname": "s404.pingdom.com",
        "ip": "192.0.2.4",
        "countryiso": "GB",
        "region": "EU",
    },
]


def pingdom_result(probe: int, ago: int, status: str, ms: int | None = None) -> dict[str, Any]:
    desc = {"up": "OK", "down": "Timeout (> 30s)", "unconfirmed_down": "Connection refused"}.get(status, "?")
    result: dict[str, Any] = {
        "probeid": probe,
        "time": NOW - ago,
        "status": status,
        "statusdesc": desc,
        "statusdesclong": desc,
    }
    if ms is not None:
        result["responsetime"] = ms
    return result


class FakePingdom(FakeServer):
    """``/api/3.1/checks``, ``/probes`` and ``/results/{id}`` behind a Bearer token."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = [
            {
                "id": 101,
                "name": "shop",
                "hostname": "shop.example.test",
                "type": "http",
                "status": "down",
                "lasttesttime": NOW - 30,
                "lastresponsetime": 0,
                "resolution": 1,
            },
            {
                "id": 102,
                "name": "api",
                "hostname": "api.example.test",
                "type": "http",
                "status": "up",
                "lasttesttime": NOW - 45,
                "lastresponsetime": 321,
                "resolution": 1,
            },
            {
                "id": 103,
                "name": "blog",
                "hostname": "blog.example.test",
                "type": "http",
                "status": "up",
                "lasttesttime": NOW - 50,
                "lastresponsetime": 120,
                "resolution": 5,
            },
            {
                "id": 104,
                "name": "old-site",
                "hostname": "old.example.test",
                "type": "http",
                "status": "paused",
                "resolution": 5,
            },
        ]
        self.results: dict[int, list[dict[str, Any]]] = {
            # newest first, as the API answers
            101: [
                pingdom_result(1, 60, "down"),
                pingdom_result(2, 120, "down"),
                pingdom_result(3, 180, "down"),
                pingdom_result(4, 240, "down"),
                pingdom_result(1, 900, "up", 300),
            ],
            102: [
                pingdom_result(3, 60, "down"),
                pingdom_result(1, 120, "up", 310),
                pingdom_result(2, 180, "up", 280),
                pingdom_result(3, 240, "unconfirmed_down"),
            ],
            103: [
                pingdom_result(1, 60, "up", 120),
                pingdom_result(2, 120, "up", 98),
                pingdom_result(3, 180, "up", 410),
            ],
            104: [],
        }

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if request.header("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {"error": {"statuscode": 401, "statusdesc": "Unauthorized", "errormessage": "Invalid token"}},
                status=401,
            )
        if request.path == "/api/3.1/checks":
            return web.json_response({"checks": self.checks, "counts": {"total": len(self.checks)}})
        if request.path == "/api/3.1/probes":
            return web.json_response({"probes": PROBES})
        if request.path.startswith("/api/3.1/results/"):
            check_id = int(request.path.rsplit("/", 1)[1])
            limit = int(request.query.get("limit", 1000))
            return web.json_response(
                {"activeprobes": [1, 2, 3, 4], "results": self.results[check_id][:limit]}
            )
        return web.json_response({"error": {"statuscode": 404, "errormessage": "Not found"}}, status=404)


def statuscake_run(location: str, ago: int, code: int, ms: int) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(NOW - ago, UTC).isoformat()
    return {"created_at": stamp, "status_code": code, "location": location, "performance": ms}


class FakeStatusCake(FakeServer):
    """``/v1/uptime`` (paged) and ``/v1/uptime/{id}/history`` behind a Bearer token."""

    def __init__(self, per_page: int = 2) -> None:
        super().__init__()
        self.per_page = per_page
        self.tests = [
            {
                "id": "6001",
                "name": "shop",
                "website_url": "https://shop.example.test",
                "test_type": "HTTP",
                "check_rate": 60,
                "contact_groups": [],
                "paused": False,
                "status": "down",
                "tags": [],
                "uptime": 97.1,
            },
            {
                "id": "6002",
                "name": "checkout api",
                "website_url": "https://api.example.test/health",
                "test_type": "HTTP",
                "check_rate": 60,
                "contact_groups": [],
                "paused": False,
                "status": "up",
                "tags": ["api"],
                "uptime": 99.2,
            },
            {
                "id": "6003",
                "name": "docs",
                "website_url": "https://docs.example.test",
                "test_type": "HTTP",
                "check_rate": 300,
                "contact_groups": [],
                "paused": True,
                "status": "up",
                "tags": [],
                "uptime": 100,
            },
        ]
        self.history: dict[str, list[dict[str, Any]]] = {
            "6001": [
                statuscake_run("UK1", 30, 0, 30000),
                statuscake_run("US4", 90, 503, 120),
                statuscake_run("SG2", 150, 502, 80),
            ],
            "6002": [
                statuscake_run("AU1", 30, 0, 30000),
                statuscake_run("UK1", 90, 200, 140),
                statuscake_run("US4", 150, 200, 90),
                statuscake_run("AU1", 600, 200, 300),
            ],
            "6003": [],
        }

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if request.header("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Unauthorized", "errors": {}}, status=401)
        if request.path == "/v1/uptime":
            page = int(request.query.get("page", 1))
            start = (page - 1) * self.per_page
            pages = -(-len(self.tests) // self.per_page)
            return web.json_response(
                {
                    "data": self.tests[start : start + self.per_page],
                    "metadata": {
                        "page": page,
                        "per_page": self.per_page,
                        "page_count": pages,
                        "total_count": len(self.tests),
                    },
                }
            )
        if request.path.startswith("/v1/uptime/") and request.path.endswith("/history"):
            test_id = request.path.split("/")[3]
            limit = int(request.query.get("limit", 25))
            return web.json_response(
                {
                    "data": self.history[test_id][:limit],
                    "links": {"self": f"{self.url}{request.path}"},
                    "metadata": {},
                }
            )
        return web.json_response({"message": "Not found", "errors": {}}, status=404)


UPTIMEROBOT_ACCOUNT = [
    uptimerobot_monitor(
        777001,
        "shop",
        9,
        logs=[
            {"type": 2, "datetime": NOW - 86400, "duration": 80000},
            {
                "type": 1,
                "datetime": NOW - 420,
                "duration": 420,
                "reason": {"code": "522", "detail": "Connection Timeout"},
            },
        ],
    ),
    uptimerobot_monitor(777002, "api", 8),
    uptimerobot_monitor(777003, "blog", 2),
    uptimerobot_monitor(777004, "old-site", 0),
    uptimerobot_monitor(777005, "new-site", 1),
]


@pytest.fixture
def uptimerobot() -> Iterator[FakeUptimeRobot]:
    with FakeUptimeRobot(list(UPTIMEROBOT_ACCOUNT)) as fake:
        yield fake


@pytest.fixture
def pingdom() -> Iterator[FakePingdom]:
    with FakePingdom() as fake:
        yield fake


@pytest.fixture
def statuscake() -> Iterator[FakeStatusCake]:
    with FakeStatusCake() as fake:
        yield fake


def verdicts(report: Any) -> dict[str, Verdict]:
    return {assessment.check.name: assessment.verdict for assessment in report.assessments}


# --------------------------------------------------------------------- providers


async def test_uptimerobot_states_logs_and_response_times(uptimerobot: FakeUptimeRobot) -> None:
    async with httpx.AsyncClient() as client:
        report = await check_monitors([UptimeRobotClient(client, KEY, uptimerobot.url + "/v2")], results=5)
    assert verdicts(report) == {
        "shop": Verdict.GLOBAL_OUTAGE,
        "api": Verdict.REGIONAL,
        "blog": Verdict.HEALTHY,
        "old-site": Verdict.UNKNOWN,
        "new-site": Verdict.UNKNOWN,
    }
    shop = report.assessments[0]
    assert shop.check.state is CheckState.DOWN
    assert shop.check.response_ms == 812 and shop.check.last_checked == NOW - 300
    assert [event.kind for event in shop.check.events] == ["down", "up"]  # newest first
    assert shop.check.events[0].detail == "522 Connection Timeout"
    assert "no per-region results" in shop.reason
    assert "not yet confirmed" in report.assessments[1].reason
    call = uptimerobot.last_call("/v2/getMonitors")
    assert call.method == "POST"
    assert call.body["api_key"] == KEY and call.body["logs"] == "1" and call.body["response_times"] == "1"
    assert call.body["logs_limit"] == "5"
    assert report.verdict is Verdict.GLOBAL_OUTAGE


async def test_uptimerobot_pagination_and_bad_key(uptimerobot: FakeUptimeRobot) -> None:
    uptimerobot.monitors = [uptimerobot_monitor(i, f"site-{i}", 2) for i in range(120)]
    async with httpx.AsyncClient() as client:
        checks = await UptimeRobotClient(client, KEY, uptimerobot.url + "/v2").checks("site-11", 3)
        assert [check.name for check in checks] == [
            "site-11",
            "site-110",
            "site-111",
            "site-112",
            "site-113",
            "site-114",
            "site-115",
            "site-116",
            "site-117",
            "site-118",
            "site-119",
        ]
        assert [call.body["offset"] for call in uptimerobot.calls("/v2/getMonitors")] == ["0", "50", "100"]
        with pytest.raises(IntegrationError, match="unexpected answer: api_key is invalid"):
            await UptimeRobotClient(client, "wrong", uptimerobot.url + "/v2").checks(None, 3)


async def test_pingdom_regions_tell_global_from_regional(pingdom: FakePingdom) -> None:
    async with httpx.AsyncClient() as client:
        report = await check_monitors([PingdomClient(client, TOKEN, pingdom.url + "/api/3.1/")], results=10)
    assert verdicts(report) == {
        "shop": Verdict.GLOBAL_OUTAGE,
        "api": Verdict.REGIONAL,
        "blog": Verdict.HEALTHY,
        "old-site": Verdict.UNKNOWN,
    }
    shop, api = report.assessments[0], report.assessments[1]
    assert shop.reason == "down from every region that reported (3: APAC, EU, NA)"
    eu = {region.region: region for region in shop.regions}["EU"]
    assert eu.probes == ("Frankfurt, DE", "London, UK") and eu.down == 2
    assert api.failing_regions == ["APAC"]
    assert api.reason == "down from 1 of 3 regions (APAC); up from EU, NA"
    assert [r.up for r in api.check.results] == [False, True, True, False]
    assert pingdom.last_call("/api/3.1/results/102").query["limit"] == "10"
    assert all(call.header("Authorization") == f"Bearer {TOKEN}" for call in pingdom.requests)
    findings = report.findings
    assert [(f.kind, f.severity) for f in findings] == [
        ("global-outage", Severity.CRITICAL),
        ("regional-outage", Severity.WARNING),
        ("unknown-state", Severity.INFO),
    ]


async def test_statuscake_pages_history_and_locations(statuscake: FakeStatusCake) -> None:
    async with httpx.AsyncClient() as client:
        report = await check_monitors([StatusCakeClient(client, TOKEN, statuscake.url + "/v1")], results=25)
    assert verdicts(report) == {
        "shop": Verdict.GLOBAL_OUTAGE,
        "checkout api": Verdict.REGIONAL,
        "docs": Verdict.UNKNOWN,
    }
    assert [call.query["page"] for call in statuscake.calls("/v1/uptime")] == ["1", "2"]
    api = report.assessments[1]
    assert api.failing_regions == ["AU1"]
    au1 = {region.region: region for region in api.regions}["AU1"]
    assert (au1.latest_up, au1.up, au1.down) == (False, 1, 1)
    assert api.check.results[0].detail == "no response"
    assert report.assessments[2].reason == "the check is paused"


async def test_match_filters_before_fetching_results(pingdom: FakePingdom) -> None:
    async with httpx.AsyncClient() as client:
        report = await check_monitors(
            [PingdomClient(client, TOKEN, pingdom.url + "/api/3.1")], match="API.EXAMPLE"
        )
    assert [a.check.name for a in report.assessments] == ["api"]
    assert [call.path for call in pingdom.calls("/api/3.1/results/*")] == ["/api/3.1/results/102"]


async def test_one_provider_failing_is_reported_all_failing_raises(
    pingdom: FakePingdom, statuscake: FakeStatusCake
) -> None:
    async with httpx.AsyncClient() as client:
        providers = [
            PingdomClient(client, TOKEN, pingdom.url + "/api/3.1"),
            StatusCakeClient(client, "expired", statuscake.url + "/v1"),
        ]
        report = await check_monitors(providers)
        assert {a.check.provider for a in report.assessments} == {"Pingdom"}
        ((provider, error),) = report.errors
        assert provider == "StatusCake"
        assert error.startswith("StatusCake rejected the credentials (HTTP 401")
        assert "expired" not in error
        assert report.to_dict()["errors"] == [{"provider": "StatusCake", "error": error}]
        pingdom.fail_next("/api/3.1/checks", status=503)
        with pytest.raises(IntegrationError) as caught:
            await check_monitors(providers)
        assert caught.value.retryable is True
        with pytest.raises(UserError, match="no monitor check matches 'nothing'"):
            await check_monitors(providers[:1], match="nothing")
        with pytest.raises(UserError, match="no monitor provider"):
            await check_monitors([])


# --------------------------------------------------------------------- pure parts


def test_region_latest_result_wins_by_time_not_order() -> None:
    results = [
        ProbeResult(at=100, region="EU", probe="a", up=True),
        ProbeResult(at=200, region="EU", probe="b", up=False),
        ProbeResult(at=150, region="NA", probe="c", up=None),
    ]
    eu, na = region_statuses(results)
    assert (eu.region, eu.latest_up, eu.latest_at) == ("EU", False, 200)
    assert (na.latest_up, na.up, na.down) == (None, 0, 0)
    check = MonitorCheck("Pingdom", "1", "x", "x.test", CheckState.UP, results=tuple(results))
    assert assess_check(check).verdict is Verdict.GLOBAL_OUTAGE  # NA could not tell
    recovered = MonitorCheck(
        "Pingdom",
        "1",
        "x",
        "",
        CheckState.DOWN,
        results=(ProbeResult(at=1, region="EU", probe="a", up=True),),
    )
    assessment = assess_check(recovered)
    assert assessment.verdict is Verdict.HEALTHY
    assert assessment.reason == "up from all 1 regions (the check itself still says down)"


def test_vendor_parsers_reject_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="stat is not ok"):
        parse_uptimerobot_monitors({"stat": "fail"})
    with pytest.raises(ValueError, match="not a list"):
        parse_statuscake_history({"data": {"oops": 1}})
    naive = parse_statuscake_history({"data": [{"created_at": "2026-01-01T00:00:00", "status_code": 200}]})
    assert naive[0].at == NOW and naive[0].up is True and naive[0].region == "unknown"


# --------------------------------------------------------------------- command line


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for name in ("FIREBELL_CONFIG", "UPTIMEROBOT_API_KEY", "PINGDOM_API_TOKEN", "STATUSCAKE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_cli_monitors_from_environment_json(
    runner: CliRunner, pingdom: FakePingdom, statuscake: FakeStatusCake
) -> None:
    env = {
        "PINGDOM_API_TOKEN": TOKEN,
        "PINGDOM_API_URL": pingdom.url + "/api/3.1",
        "STATUSCAKE_API_TOKEN": TOKEN,
        "STATUSCAKE_API_URL": statuscake.url + "/v1",
    }
    result = runner.invoke(cli, ["diag", "monitors", "--check", "shop", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "global-outage"
    assert {(check["provider"], check["verdict"]) for check in data["checks"]} == {
        ("Pingdom", "global-outage"),
        ("StatusCake", "global-outage"),
    }
    assert data["checks"][0]["regions"][0]["latest_at"].endswith("Z")


def test_cli_monitors_flag_selects_provider_and_prints_tables(
    runner: CliRunner, uptimerobot: FakeUptimeRobot, pingdom: FakePingdom
) -> None:
    env = {
        "UPTIMEROBOT_API_URL": uptimerobot.url + "/v2",
        "PINGDOM_API_TOKEN": TOKEN,  # ignored: a flag picks the providers
        "PINGDOM_API_URL": pingdom.url + "/api/3.1",
        "COLUMNS": "220",
    }
    result = runner.invoke(cli, ["diag", "monitors", "--uptimerobot-key", KEY], env=env)
    assert result.exit_code == 0, result.output
    assert "verdict: global-outage" in result.stdout
    assert "522 Connection Timeout" in result.stdout
    assert pingdom.requests == []


def test_cli_monitors_errors(runner: CliRunner, statuscake: FakeStatusCake) -> None:
    result = runner.invoke(cli, ["diag", "monitors"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "no monitor provider configured" in result.stderr
    env = {"STATUSCAKE_API_URL": statuscake.url + "/v1"}
    result = runner.invoke(cli, ["diag", "monitors", "--statuscake-token", "bad"], env=env)
    assert result.exit_code == 1
    assert "StatusCake rejected the credentials" in result.stderr
    result = runner.invoke(
        cli, ["diag", "monitors", "--statuscake-token", "x"], env={"STATUSCAKE_API_URL": "ftp://x"}
    )
    assert result.exit_code == 2
    assert "STATUSCAKE_API_URL must be an http(s) URL" in result.stderr
