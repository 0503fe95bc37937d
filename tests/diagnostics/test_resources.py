"""``diag resources``: thresholds, a local Prometheus query API and a node_exporter endpoint.

``FakePrometheus`` answers ``/api/v1/query`` in Prometheus's JSON and really
applies the instance matcher (exact or regex) and the ``__name__`` regex from
the query, so the selectors firebell builds are exercised, not just echoed.
``FakeNodeExporter`` serves the text exposition format with CPU counters that
advance between scrapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from typer.testing import CliRunner

from bot.diagnostics.finding_model import Severity
from bot.diagnostics.resources import (
    NodeExporterSource,
    PrometheusSource,
    ResourceSnapshot,
    ResourceThresholds,
    Sample,
    check_resources,
    cpu_busy_between,
    evaluate_resources,
    instance_selector,
    parse_metrics_text,
    parse_prometheus_vector,
)
from bot.errors import IntegrationError, UserError
from handlers.cli import cli
from tests.fakes.base import FakeServer, RecordedRequest

GIB = 2**30


def node_series(instance: str, *, stressed: bool = False) -> list[tuple[dict[str, str], float]]:
    """The gauges node_exporter exposes for one host; ``stressed`` crosses every threshold."""
    fs = [
        (
            "/",
            "/dev/sda1",
            "ext4",
            100 * GIB,
            (0.5 if stressed else 40) * GIB,
            6e6,
            (1e5 if stressed else 5e6),
        ),
        ("/var/lib/docker", "/dev/sdb1", "xfs", 500 * GIB, (40 if stressed else 300) * GIB, 2e8, 1.9e8),
        ("/run", "tmpfs", "tmpfs", 1 * GIB, 0.0, 1e6, 0.0),
        ("/var/lib/docker/overlay2/x/merged", "overlay", "overlay", 50 * GIB, 0.0, 1e6, 0.0),
    ]
    series: list[tuple[dict[str, str], float]] = []
    base = {"instance": instance, "job": "node"}

    def add(name: str, value: float, **labels: str) -> None:
        series.append(({"__name__": name, **base, **labels}, value))

    add("node_load1", 14.5 if stressed else 0.8)
    add("node_load5", 11.0 if stressed else 0.6)
    add("node_memory_MemTotal_bytes", 32 * GIB)
    add("node_memory_MemAvailable_bytes", (1 if stressed else 20) * GIB)
    add("node_memory_SwapTotal_bytes", 4 * GIB)
    add("node_memory_SwapFree_bytes", (1 if stressed else 4) * GIB)
    add("node_filefd_allocated", 9000 if stressed else 2300)
    add("node_filefd_maximum", 10000)
    for mountpoint, device, fstype, size, avail, files, files_free in fs:
        labels = {"mountpoint": mountpoint, "device": device, "fstype": fstype}
        add("node_filesystem_size_bytes", size, **labels)
        add("node_filesystem_avail_bytes", avail, **labels)
        add("node_filesystem_files", files, **labels)
        add("node_filesystem_files_free", files_free, **labels)
    return series


class FakePrometheus(FakeServer):
    """``GET /api/v1/query`` for three query shapes: gauges by name, CPU busy %, core count."""

    def __init__(self) -> None:
        super().__init__()
        self.series: list[tuple[dict[str, str], float]] = []
        self.cpu_busy: dict[str, float] = {}
        self.cores: dict[str, int] = {}

    def add_host(self, instance: str, *, stressed: bool = False, busy: float = 35.0, cores: int = 4) -> None:
        self.series.extend(node_series(instance, stressed=stressed))
        self.cpu_busy[instance] = busy
        self.cores[instance] = cores

    @staticmethod
    def _matcher(query: str, label: str) -> re.Pattern[str] | None:
        found = re.search(label + r'(=~|=)"((?:[^"\\]|\\.)*)"', query)
        if found is None:
            return None
        value = found.group(2).replace('\\"', '"').replace("\\\\", "\\")
        return re.compile(value if found.group(1) == "=~" else re.escape(value))

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if request.path != "/api/v1/query":
            return web.json_response({"status": "error", "error": "not found"}, status=404)
        query = request.query.get("query", "")
        instance = self._matcher(query, "instance")
        if instance is None:
            return web.json_response(
                {"status": "error", "errorType": "bad_data", "error": "no instance matcher"}, status=400
            )
        result: list[dict[str, Any]] = []
        now = 1_700_000_000.0
        if "rate(node_cpu_seconds_total" in query:
            for name, busy in self.cpu_busy.items():
                if instance.fullmatch(name):
                    result.append({"metric": {"instance": name}, "value": [now, str(busy)]})
        elif query.startswith("count by (instance)"):
            for name, cores in self.cores.items():
                if instance.fullmatch(name):
                    result.append({"metric": {"instance": name}, "value": [now, str(cores)]})
        else:
            names = self._matcher(query, "__name__")
            for labels, value in self.series:
                if instance.fullmatch(labels["instance"]) and names and names.fullmatch(labels["__name__"]):
                    result.append({"metric": labels, "value": [now, repr(value)]})
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})


NODE_EXPORTER_TEXT = """\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
{cpu}
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.52
# HELP node_load5 5m load average.
# TYPE node_load5 gauge
node_load5 0.61
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 1.2884901888e+09
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 8.589934592e+09
# HELP node_memory_SwapFree_bytes Memory information field SwapFree_bytes.
# TYPE node_memory_SwapFree_bytes gauge
node_memory_SwapFree_bytes 0
# HELP node_memory_SwapTotal_bytes Memory information field SwapTotal_bytes.
# TYPE node_memory_SwapTotal_bytes gauge
node_memory_SwapTotal_bytes 0
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{{device="/dev/vda1",fstype="ext4",mountpoint="/"}} 2.147483648e+09
node_filesystem_avail_bytes{{device="tmpfs",fstype="tmpfs",mountpoint="/run"}} 8.36e+08
# HELP node_filesystem_size_bytes Filesystem size in bytes.
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{{device="/dev/vda1",fstype="ext4",mountpoint="/"}} 4.294967296e+10
node_filesystem_size_bytes{{device="tmpfs",fstype="tmpfs",mountpoint="/run"}} 8.38e+08
# HELP node_filesystem_files Filesystem total file nodes.
# TYPE node_filesystem_files gauge
node_filesystem_files{{device="/dev/vda1",fstype="ext4",mountpoint="/"}} 2.62144e+06
# HELP node_filesystem_files_free Filesystem total free file nodes.
# TYPE node_filesystem_files_free gauge
node_filesystem_files_free{{device="/dev/vda1",fstype="ext4",mountpoint="/"}} 2.5e+06
# HELP node_filefd_allocated File descriptor statistics: allocated.
# TYPE node_filefd_allocated gauge
node_filefd_allocated 1472
# HELP node_filefd_maximum File descriptor statistics: maximum.
# TYPE node_filefd_maximum gauge
node_filefd_maximum 9.223372036854776e+18
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
"""


class FakeNodeExporter(FakeServer):
    """``/metrics`` with two CPUs; each scrape adds ``busy_step``/``idle_step`` seconds per CPU."""

    def __init__(self, *, busy_step: float = 0.475, idle_step: float = 0.025) -> None:
        super().__init__()
        self.busy_step = busy_step
        self.idle_step = idle_step
        self.scrapes = 0

    def _handle(self, request: RecordedRequest) -> web.StreamResponse:
        if request.path != "/metrics":
            return web.Response(status=404, text="404 page not found\n")
        self.scrapes += 1
        lines = []
        for cpu in ("0", "1"):
            idle = 1000.0 + self.idle_step * self.scrapes
            # Half the busy time as user, half as system, as the kernel splits it.
            user = 200.0 + self.busy_step / 2 * self.scrapes
            system = 100.0 + self.busy_step / 2 * self.scrapes
            for mode, value in (("idle", idle), ("user", user), ("system", system), ("iowait", 5.0)):
                lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {value}')
        body = NODE_EXPORTER_TEXT.format(cpu="\n".join(lines))
        return web.Response(text=body, content_type="text/plain", charset="utf-8")


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    with FakePrometheus() as fake:
        yield fake


@pytest.fixture
def node_exporter() -> Iterator[FakeNodeExporter]:
    with FakeNodeExporter() as fake:
        yield fake


async def no_wait(_: float) -> None:
    """Stands in for the second between scrapes: the fake's counters advance per scrape."""


# --------------------------------------------------------------------- Prometheus


async def test_prometheus_healthy_host(prometheus: FakePrometheus) -> None:
    prometheus.add_host("web1:9100")
    prometheus.add_host("web2:9100", stressed=True)
    async with httpx.AsyncClient() as client:
        report = await check_resources(PrometheusSource(client, prometheus.url + "/"), "web1:9100")
    s = report.snapshot
    assert s.target == "web1:9100"
    assert s.cpu_busy_pct == 35.0 and s.cpu_count == 4
    assert (s.load1, s.load5) == (0.8, 0.6)
    assert s.memory_available_pct == pytest.approx(62.5)
    assert s.swap_used_pct == 0
    assert [fs.mountpoint for fs in s.filesystems] == ["/", "/var/lib/docker"]  # tmpfs, overlay left out
    assert s.fds_used_pct == pytest.approx(23.0)
    assert report.findings == ()
    queries = [call.query["query"] for call in prometheus.calls("/api/v1/query")]
    assert len(queries) == 3
    assert all('instance="web1:9100"' in query for query in queries)
    assert any('rate(node_cpu_seconds_total{mode!="idle",instance="web1:9100"}[5m])' in q for q in queries)


async def test_prometheus_stressed_host_turns_every_figure_into_a_finding(prometheus: FakePrometheus) -> None:
    prometheus.add_host("db1:9100", stressed=True, busy=97.0, cores=8)
    async with httpx.AsyncClient() as client:
        report = await check_resources(PrometheusSource(client, prometheus.url), "db1:9100")
    by_kind = {(finding.kind, finding.subject): finding for finding in report.findings}
    assert set(by_kind) == {
        ("cpu-busy", "cpu"),
        ("load-high", "load"),
        ("memory-low", "memory"),
        ("swap-used", "swap"),
        ("disk-full", "disk /"),
        ("disk-full", "disk /var/lib/docker"),
        ("inodes-full", "inodes /"),
        ("fds-high", "file descriptors"),
    }
    assert by_kind[("disk-full", "disk /")].severity is Severity.CRITICAL  # 99.5 % used
    assert by_kind[("disk-full", "disk /var/lib/docker")].severity is Severity.WARNING  # 92 %
    assert by_kind[("load-high", "load")].message.startswith("load 14.5 (1 min) / 11 (5 min) on 8 cores")
    assert report.findings[0].severity is Severity.CRITICAL
    data = json.loads(json.dumps(report.to_dict()))
    assert data["cpu"]["busy_pct"] == 97.0
    assert data["memory"]["swap_used_pct"] == 75.0
    assert {finding["kind"] for finding in data["findings"]} >= {"cpu-busy", "fds-high"}
    assert "[critical]" in report.summary()


async def test_bare_host_matches_any_port_and_ambiguity_is_refused(prometheus: FakePrometheus) -> None:
    prometheus.add_host("web1.example.test:9100")
    prometheus.add_host("web1Xexample.test:9100")  # the regex must escape the dots
    async with httpx.AsyncClient() as client:
        source = PrometheusSource(client, prometheus.url)
        report = await check_resources(source, "web1.example.test")
        assert report.snapshot.target == "web1.example.test:9100"
        prometheus.add_host("web1.example.test:9200")
        with pytest.raises(UserError, match="matches several instances"):
            await source.snapshot("web1.example.test")
        with pytest.raises(UserError, match="no node_exporter series for instance 'nope:9100'"):
            await source.snapshot("nope:9100")


async def test_prometheus_errors_become_integration_errors(prometheus: FakePrometheus) -> None:
    prometheus.add_host("web1:9100")
    async with httpx.AsyncClient() as client:
        source = PrometheusSource(client, prometheus.url)
        prometheus.fail_next(
            "/api/v1/query", status=422, body={"status": "error", "errorType": "execution", "error": "boom"}
        )
        with pytest.raises(IntegrationError, match=r"HTTP 422 .*: boom") as caught:
            await source.snapshot("web1:9100")
        assert not caught.value.retryable
        prometheus.fail_next("/api/v1/query", status=503, retry_after=7)
        with pytest.raises(IntegrationError) as caught:
            await source.snapshot("web1:9100")
        assert caught.value.retryable and caught.value.retry_after == 7
        prometheus.fail_next("/api/v1/query", status=200, body={"status": "error", "error": "bad"})
        with pytest.raises(IntegrationError, match="query failed: bad"):
            await source.snapshot("web1:9100")


async def test_unreachable_prometheus_is_retryable() -> None:
    with FakePrometheus() as fake:
        url = fake.url
    async with httpx.AsyncClient() as client:
        with pytest.raises(IntegrationError, match="cannot reach") as caught:
            await PrometheusSource(client, url).snapshot("web1:9100")
    assert caught.value.retryable


# --------------------------------------------------------------------- node_exporter


async def test_node_exporter_direct_two_scrapes(node_exporter: FakeNodeExporter) -> None:
    async with httpx.AsyncClient() as client:
        source = NodeExporterSource(client, node_exporter.url, interval=1.0, sleep=no_wait)
        report = await check_resources(source, "vm7")
    s = report.snapshot
    assert node_exporter.scrapes == 2
    assert [call.path for call in node_exporter.calls("/metrics")] == ["/metrics", "/metrics"]
    assert s.cpu_busy_pct == pytest.approx(95.0)  # 0.475 s busy vs 0.025 s idle per CPU
    assert s.cpu_count == 2
    assert s.memory_available_pct == pytest.approx(15.0)
    assert s.swap_used_pct is None  # no swap configured
    assert [fs.mountpoint for fs in s.filesystems] == ["/"]
    assert s.filesystems[0].used_pct == pytest.approx(95.0)
    kinds = {finding.kind for finding in report.findings}
    assert kinds == {"cpu-busy", "disk-full"}
    assert s.source == f"node_exporter {node_exporter.url}/metrics"


async def test_node_exporter_serving_something_else(node_exporter: FakeNodeExporter) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(IntegrationError, match="HTTP 404"):
            await NodeExporterSource(client, node_exporter.url + "/other", sleep=no_wait).snapshot("x")


# --------------------------------------------------------------------- pure parts


def test_parse_metrics_text_and_cpu_rate() -> None:
    first = parse_metrics_text(
        'node_cpu_seconds_total{cpu="0",mode="idle"} 100\nnode_cpu_seconds_total{cpu="0",mode="user"} 50\n'
    )
    second = parse_metrics_text(
        'node_cpu_seconds_total{cpu="0",mode="idle"} 101\nnode_cpu_seconds_total{cpu="0",mode="user"} 53\n'
    )
    assert cpu_busy_between(first, second) == pytest.approx(75.0)
    assert cpu_busy_between(second, first) is None  # counter reset
    with pytest.raises(ValueError, match="Prometheus text format"):
        parse_metrics_text("node_load1{ 1\n")


def test_parse_prometheus_vector_rejects_other_shapes() -> None:
    ok = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]},
    }
    assert parse_prometheus_vector(ok)[0].name == ""
    with pytest.raises(ValueError, match="instant vector"):
        parse_prometheus_vector({"status": "success", "data": {"resultType": "matrix", "result": []}})


def test_instance_selector_escapes() -> None:
    assert instance_selector("web1:9100") == 'instance="web1:9100"'
    assert instance_selector("web1.example") == 'instance=~"web1\\\\.example(:[0-9]+)?"'
    assert instance_selector('we"ird') == 'instance=~"we\\"ird(:[0-9]+)?"'


def test_thresholds_are_configurable_and_missing_data_is_said() -> None:
    snapshot = ResourceSnapshot(
        target="h",
        source="test",
        cpu_busy_pct=60.0,
        cpu_count=2,
        load1=2.5,
        load5=2.0,
    )
    assert {f.kind for f in evaluate_resources(snapshot, ResourceThresholds())} == {"no-data"}
    strict = ResourceThresholds(cpu_busy_pct=50, load_per_core=1.0)
    kinds = {f.kind for f in evaluate_resources(snapshot, strict)}
    assert kinds == {"cpu-busy", "load-high", "no-data"}
    (no_data,) = [f for f in evaluate_resources(snapshot, strict) if f.kind == "no-data"]
    assert no_data.message == "no data for memory, filesystems, file descriptors"
    assert Sample("node_load1", {}, 1.0).value == 1.0


# --------------------------------------------------------------------- command line


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FIREBELL_CONFIG", raising=False)
    return CliRunner()


def test_cli_resources_from_prometheus_json(runner: CliRunner, prometheus: FakePrometheus) -> None:
    prometheus.add_host("web1:9100", stressed=True)
    result = runner.invoke(cli, ["diag", "resources", "web1:9100", "--prometheus", prometheus.url, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"] == "web1:9100"
    assert any(finding["kind"] == "disk-full" for finding in data["findings"])


def test_cli_resources_tables_and_thresholds_from_config(
    runner: CliRunner, prometheus: FakePrometheus, tmp_path: Path
) -> None:
    prometheus.add_host("web1:9100", busy=35.0)
    (tmp_path / "firebell.toml").write_text(
        f'[diagnostics]\nprometheus_url = "{prometheus.url}"\n[diagnostics.resources]\ncpu_busy_pct = 30\n'
    )
    result = runner.invoke(cli, ["diag", "resources", "web1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "CPU 35 % busy (threshold 30 %)" in result.stdout
    assert "/var/lib/docker" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["web1"], "give --prometheus URL or --node-exporter URL"),
        (["web1", "--prometheus", "http://a", "--node-exporter", "http://b"], "not both"),
        (["web1", "--prometheus", "prometheus:9090"], "--prometheus must be an http(s) URL"),
    ],
)
def test_cli_resources_bad_input_exits_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["diag", "resources", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_cli_resources_unknown_target_exits_2(runner: CliRunner, prometheus: FakePrometheus) -> None:
    result = runner.invoke(cli, ["diag", "resources", "ghost:9100", "--prometheus", prometheus.url])
    assert result.exit_code == 2
    assert "no node_exporter series" in result.stderr
