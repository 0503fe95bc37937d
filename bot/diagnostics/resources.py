"""Host resources from node_exporter metrics (``diag resources TARGET``).

Two sources, one shape (:class:`ResourceSnapshot`):

* a Prometheus server: instant queries on ``/api/v1/query`` for the series
  whose ``instance`` label is TARGET (``host:port``, or just ``host`` for any
  port);
* a node_exporter ``/metrics`` endpoint read directly: the Prometheus text
  format, scraped twice a moment apart to turn the CPU counters into a rate.

Threshold evaluation (:func:`evaluate_resources`) is pure: a snapshot and
:class:`ResourceThresholds` in, findings out. Figures cross a threshold →
warning; a resource that is (nearly) used up (≥ 99 % used, ≤ 1 % memory
available) → critical.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.diagnostics.api_fetch import fetch_json, fetch_text, gather_all
from bot.diagnostics.finding_model import Finding, Severity, sort_findings
from bot.errors import IntegrationError, UserError

EXCLUDED_FSTYPES = frozenset({"tmpfs", "overlay", "squashfs", "devtmpfs", "ramfs", "nsfs", "autofs"})
"""Filesystems whose fullness says nothing about the host (memory-backed,
container layers, read-only snap images that are always 100 % full)."""

EXHAUSTED_PCT = 99.0
CPU_RATE_WINDOW = "5m"

_GAUGES = (
    "node_load1",
    "node_load5",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_memory_SwapFree_bytes",
    "node_memory_SwapTotal_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files_free",
    "node_filesystem_files",
    "node_filefd_allocated",
    "node_filefd_maximum",
)


class Sample(NamedTuple):
    """One series value: metric name, labels, value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class ResourceThresholds:
    """When figures become warnings (percentages are 0-100)."""

    cpu_busy_pct: float = 90.0
    load_per_core: float = 1.5
    memory_available_pct: float = 10.0
    swap_used_pct: float = 50.0
    disk_used_pct: float = 90.0
    inodes_used_pct: float = 90.0
    fds_used_pct: float = 80.0

    def to_dict(self) -> dict[str, float]:
        return {
            "cpu_busy_pct": self.cpu_busy_pct,
            "load_per_core": self.load_per_core,
            "memory_available_pct": self.memory_available_pct,
            "swap_used_pct": self.swap_used_pct,
            "disk_used_pct": self.disk_used_pct,
            "inodes_used_pct": self.inodes_used_pct,
            "fds_used_pct": self.fds_used_pct,
        }


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole <= 0:
        return None
    return 100.0 * part / whole


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    mountpoint: str
    device: str
    fstype: str
    size_bytes: float | None = None
    avail_bytes: float | None = None
    files: float | None = None
    files_free: float | None = None

    @property
    def used_pct(self) -> float | None:
        if self.size_bytes is None or self.avail_bytes is None:
            return None
        return _pct(self.size_bytes - self.avail_bytes, self.size_bytes)

    @property
    def inodes_used_pct(self) -> float | None:
        # Filesystems without a fixed inode table (btrfs, some FUSE) report 0 files.
        if self.files is None or self.files_free is None:
            return None
        return _pct(self.files - self.files_free, self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mountpoint": self.mountpoint,
            "device": self.device,
            "fstype": self.fstype,
            "size_bytes": self.size_bytes,
            "avail_bytes": self.avail_bytes,
            "used_pct": _round(self.used_pct),
            "files": self.files,
            "files_free": self.files_free,
            "inodes_used_pct": _round(self.inodes_used_pct),
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    """The figures for one host; None where the source had no data."""

    target: str
    source: str
    cpu_busy_pct: float | None = None
    cpu_count: int | None = None
    load1: float | None = None
    load5: float | None = None
    memory_total_bytes: float | None = None
    memory_available_bytes: float | None = None
    swap_total_bytes: float | None = None
    swap_free_bytes: float | None = None
    filesystems: tuple[FilesystemUsage, ...] = ()
    fds_allocated: float | None = None
    fds_maximum: float | None = None

    @property
    def memory_available_pct(self) -> float | None:
        return _pct(self.memory_available_bytes, self.memory_total_bytes)

    @property
    def swap_used_pct(self) -> float | None:
        if self.swap_total_bytes is None or self.swap_free_bytes is None:
            return None
        return _pct(self.swap_total_bytes - self.swap_free_bytes, self.swap_total_bytes)

    @property
    def fds_used_pct(self) -> float | None:
        return _pct(self.fds_allocated, self.fds_maximum)

    @property
    def load_per_core(self) -> float | None:
        loads = [load for load in (self.load1, self.load5) if load is not None]
        if not loads or not self.cpu_count:
            return None
        return max(loads) / self.cpu_count

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "source": self.source,
            "cpu": {
                "busy_pct": _round(self.cpu_busy_pct),
                "count": self.cpu_count,
                "load1": self.load1,
                "load5": self.load5,
                "load_per_core": _round(self.load_per_core, 2),
            },
            "memory": {
                "total_bytes": self.memory_total_bytes,
                "available_bytes": self.memory_available_bytes,
                "available_pct": _round(self.memory_available_pct),
                "swap_total_bytes": self.swap_total_bytes,
                "swap_free_bytes": self.swap_free_bytes,
                "swap_used_pct": _round(self.swap_used_pct),
            },
            "filesystems": [fs.to_dict() for fs in self.filesystems],
            "file_descriptors": {
                "allocated": self.fds_allocated,
                "maximum": self.fds_maximum,
                "used_pct": _round(self.fds_used_pct, 2),
            },
        }


# --------------------------------------------------------------------- pure parsing


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def snapshot_from_samples(
    target: str,
    source: str,
    samples: Iterable[Sample],
    *,
    cpu_busy_pct: float | None = None,
    cpu_count: int | None = None,
) -> ResourceSnapshot:
    """Build a snapshot from gauge samples (either source); unknown names are ignored."""
    single: dict[str, float] = {}
    mounts: dict[str, dict[str, Any]] = {}
    fs_fields = {
        "node_filesystem_avail_bytes": "avail_bytes",
        "node_filesystem_size_bytes": "size_bytes",
        "node_filesystem_files_free": "files_free",
        "node_filesystem_files": "files",
    }
    cores: set[str] = set()
    for sample in samples:
        value = _finite(sample.value)
        if sample.name in fs_fields:
            fstype = sample.labels.get("fstype", "")
            mountpoint = sample.labels.get("mountpoint", "")
            if fstype in EXCLUDED_FSTYPES or not mountpoint or value is None:
                continue
            entry = mounts.setdefault(
                mountpoint,
                {"mountpoint": mountpoint, "device": sample.labels.get("device", ""), "fstype": fstype},
            )
            entry[fs_fields[sample.name]] = value
        elif sample.name == "node_cpu_seconds_total" and sample.labels.get("mode") == "idle":
            cores.add(sample.labels.get("cpu", ""))
        elif value is not None:
            single[sample.name] = value
    if cpu_count is None and cores:
        cpu_count = len(cores)
    return ResourceSnapshot(
        target=target,
        source=source,
        cpu_busy_pct=cpu_busy_pct,
        cpu_count=cpu_count,
        load1=single.get("node_load1"),
        load5=single.get("node_load5"),
        memory_total_bytes=single.get("node_memory_MemTotal_bytes"),
        memory_available_bytes=single.get("node_memory_MemAvailable_bytes"),
        swap_total_bytes=single.get("node_memory_SwapTotal_bytes"),
        swap_free_bytes=single.get("node_memory_SwapFree_bytes"),
        filesystems=tuple(FilesystemUsage(**mounts[key]) for key in sorted(mounts)),
        fds_allocated=single.get("node_filefd_allocated"),
        fds_maximum=single.get("node_filefd_maximum"),
    )


def parse_metrics_text(text: str) -> list[Sample]:
    """Samples from the Prometheus text exposition format (what node_exporter serves)."""
    try:
        return [
            Sample(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"not the Prometheus text format: {exc}") from exc


def cpu_busy_between(first: Iterable[Sample], second: Iterable[Sample]) -> float | None:
    """Busy CPU % between two scrapes of ``node_cpu_seconds_total`` (all cores together)."""

    def totals(samples: Iterable[Sample]) -> tuple[float, float]:
        busy = idle = 0.0
        for sample in samples:
            if sample.name != "node_cpu_seconds_total":
                continue
            if sample.labels.get("mode") == "idle":
                idle += sample.value
            else:
                busy += sample.value
        return busy, idle

    busy1, idle1 = totals(first)
    busy2, idle2 = totals(second)
    busy, idle = busy2 - busy1, idle2 - idle1
    # A counter reset (node_exporter or host restart) makes the deltas meaningless.
    if busy < 0 or idle < 0 or busy + idle <= 0:
        return None
    return 100.0 * busy / (busy + idle)


def parse_prometheus_vector(payload: Any) -> list[Sample]:
    """Samples from an instant-query answer (``resultType`` ``vector``)."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error") if isinstance(payload, dict) else None
        raise ValueError(f"query failed: {error or 'unexpected answer'}")
    data = payload.get("data")
    if (
        not isinstance(data, dict)
        or data.get("resultType") != "vector"
        or not isinstance(data.get("result"), list)
    ):
        raise ValueError("answer is not an instant vector")
    samples: list[Sample] = []
    for item in data["result"]:
        metric = item.get("metric") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            raise ValueError("malformed vector sample")
        labels = {str(key): str(val) for key, val in metric.items()}
        samples.append(Sample(labels.get("__name__", ""), labels, float(value[1])))
    return samples


# --------------------------------------------------------------------- thresholds


def _gib(value: float | None) -> str:
    return "?" if value is None else f"{value / 2**30:.1f} GiB"


def _severity(used_pct: float) -> Severity:
    return Severity.CRITICAL if used_pct >= EXHAUSTED_PCT else Severity.WARNING


def evaluate_resources(snapshot: ResourceSnapshot, thresholds: ResourceThresholds) -> list[Finding]:
    """Findings for every figure past its threshold, worst first."""
    findings: list[Finding] = []
    t = thresholds
    if snapshot.cpu_busy_pct is not None and snapshot.cpu_busy_pct >= t.cpu_busy_pct:
        findings.append(
            Finding(
                "cpu-busy",
                Severity.WARNING,
                "cpu",
                f"CPU {snapshot.cpu_busy_pct:.0f} % busy (threshold {t.cpu_busy_pct:g} %)",
                "Requests wait for CPU time, so latency rises everywhere; look for a runaway process or add "
                "capacity.",
            )
        )
    per_core = snapshot.load_per_core
    if per_core is not None and per_core > t.load_per_core:
        findings.append(
            Finding(
                "load-high",
                Severity.WARNING,
                "load",
                f"load {snapshot.load1 or 0:g} (1 min) / {snapshot.load5 or 0:g} (5 min) on "
                f"{snapshot.cpu_count} cores = {per_core:.2f} per core (threshold {t.load_per_core:g})",
                "More tasks are runnable or stuck in uninterruptible sleep than there are cores; with CPU "
                "not busy this usually means processes waiting on disk or network storage.",
            )
        )
    available = snapshot.memory_available_pct
    if available is not None and available < t.memory_available_pct:
        findings.append(
            Finding(
                "memory-low",
                Severity.CRITICAL if available <= 100.0 - EXHAUSTED_PCT else Severity.WARNING,
                "memory",
                f"{_gib(snapshot.memory_available_bytes)} of {_gib(snapshot.memory_total_bytes)} available "
                f"({available:.1f} %, threshold {t.memory_available_pct:g} %)",
                "The kernel is short of memory: the page cache shrinks, the host swaps, and the OOM killer "
                "ends the largest process when it runs out.",
            )
        )
    swap = snapshot.swap_used_pct
    if swap is not None and swap > t.swap_used_pct:
        findings.append(
            Finding(
                "swap-used",
                Severity.WARNING,
                "swap",
                f"swap {swap:.0f} % used (threshold {t.swap_used_pct:g} %)",
                "Memory pages live on disk; touching them stalls processes for milliseconds each, which "
                "shows up as erratic latency.",
            )
        )
    for fs in snapshot.filesystems:
        used = fs.used_pct
        if used is not None and used > t.disk_used_pct:
            findings.append(
                Finding(
                    "disk-full",
                    _severity(used),
                    f"disk {fs.mountpoint}",
                    f"{fs.mountpoint} ({fs.device}) {used:.1f} % used, {_gib(fs.avail_bytes)} free "
                    f"(threshold {t.disk_used_pct:g} %)",
                    "When it fills, writes fail with 'No space left on device': logs stop, uploads and "
                    "database writes fail.",
                )
            )
        inodes = fs.inodes_used_pct
        if inodes is not None and inodes > t.inodes_used_pct:
            findings.append(
                Finding(
                    "inodes-full",
                    _severity(inodes),
                    f"inodes {fs.mountpoint}",
                    f"{fs.mountpoint} inodes {inodes:.1f} % used (threshold {t.inodes_used_pct:g} %)",
                    "With no inodes left no new file can be created even though space remains "
                    "(many small files: sessions, caches, mail queues).",
                )
            )
    fds = snapshot.fds_used_pct
    if fds is not None and fds > t.fds_used_pct:
        findings.append(
            Finding(
                "fds-high",
                _severity(fds),
                "file descriptors",
                f"{snapshot.fds_allocated:.0f} of {snapshot.fds_maximum:.0f} file descriptors allocated "
                f"({fds:.1f} %, threshold {t.fds_used_pct:g} %)",
                "At the limit, accepting connections and opening files fail with 'Too many open files'.",
            )
        )
    missing = [
        name
        for name, present in (
            ("CPU", snapshot.cpu_busy_pct is not None or snapshot.load1 is not None),
            ("memory", snapshot.memory_total_bytes is not None),
            ("filesystems", bool(snapshot.filesystems)),
            ("file descriptors", snapshot.fds_maximum is not None),
        )
        if not present
    ]
    if missing:
        findings.append(
            Finding(
                "no-data",
                Severity.INFO,
                "metrics",
                f"no data for {', '.join(missing)}",
                "The node_exporter collector may be disabled, or the series are not scraped.",
            )
        )
    return sort_findings(findings)


@dataclass(frozen=True, slots=True)
class ResourceReport:
    snapshot: ResourceSnapshot
    thresholds: ResourceThresholds
    findings: tuple[Finding, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.snapshot.to_dict(),
            "thresholds": self.thresholds.to_dict(),
            "findings": [finding.to_dict() for finding in self.findings],
        }

    def summary(self) -> str:
        s = self.snapshot
        lines = [f"{s.target} (from {s.source})"]
        cpu = f"{s.cpu_busy_pct:.0f} % busy" if s.cpu_busy_pct is not None else "busy ?"
        load = f"load {s.load1 if s.load1 is not None else '?'} / {s.load5 if s.load5 is not None else '?'}"
        lines.append(f"CPU {cpu} on {s.cpu_count or '?'} cores, {load}")
        if s.memory_total_bytes is not None:
            mem = f"{_gib(s.memory_available_bytes)} of {_gib(s.memory_total_bytes)} available"
            if s.swap_used_pct is not None:
                mem += f", swap {s.swap_used_pct:.0f} % used"
            lines.append(f"Memory {mem}")
        for fs in s.filesystems:
            used = f"{fs.used_pct:.0f} %" if fs.used_pct is not None else "?"
            inodes = f", inodes {fs.inodes_used_pct:.0f} %" if fs.inodes_used_pct is not None else ""
            lines.append(f"Disk {fs.mountpoint} {used} used{inodes}")
        if s.fds_used_pct is not None:
            lines.append(f"File descriptors {s.fds_allocated:.0f} of {s.fds_maximum:.0f}")
        if not self.findings:
            lines.append("No resource above its threshold.")
        for finding in self.findings:
            lines.append(f"[{finding.severity.value}] {finding.message}")
        return "\n".join(lines)


# --------------------------------------------------------------------- sources


class ResourceSource(Protocol):
    async def snapshot(self, target: str) -> ResourceSnapshot: ...


def _promql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def instance_selector(target: str) -> str:
    """``instance="host:9100"``, or for a bare host any port: ``instance=~"host(:[0-9]+)?"``."""
    if re.search(r":\d+$", target) or target.startswith("["):
        return f"instance={_promql_string(target)}"
    return f"instance=~{_promql_string(re.escape(target) + '(:[0-9]+)?')}"


class PrometheusSource:
    """node_exporter series from a Prometheus server's HTTP API."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    async def _query(self, query: str) -> list[Sample]:
        payload = await fetch_json(
            self._client,
            "GET",
            f"{self._base}/api/v1/query",
            service="Prometheus",
            params={"query": query},
        )
        try:
            return parse_prometheus_vector(payload)
        except ValueError as exc:
            raise IntegrationError(f"Prometheus at {self._base}: {exc}", retryable=False) from exc

    async def snapshot(self, target: str) -> ResourceSnapshot:
        selector = instance_selector(target)
        names = "|".join(_GAUGES)
        cpu_idle = f'node_cpu_seconds_total{{mode="idle",{selector}}}'
        busy_query = (
            f'sum by (instance) (rate(node_cpu_seconds_total{{mode!="idle",{selector}}}[{CPU_RATE_WINDOW}]))'
            f" / count by (instance) ({cpu_idle}) * 100"
        )
        gauges, busy, cores = await gather_all(
            self._query(f'{{__name__=~"{names}",{selector}}}'),
            self._query(busy_query),
            self._query(f"count by (instance) ({cpu_idle})"),
        )
        instances = sorted({s.labels.get("instance", "") for s in [*gauges, *busy, *cores]})
        if not instances:
            raise UserError(f"Prometheus has no node_exporter series for instance {target!r}")
        if len(instances) > 1:
            raise UserError(f"{target!r} matches several instances ({', '.join(instances)}); give host:port")
        return snapshot_from_samples(
            instances[0],
            f"Prometheus {self._base}",
            gauges,
            cpu_busy_pct=_finite(busy[0].value) if busy else None,
            cpu_count=int(cores[0].value) if cores else None,
        )


class NodeExporterSource:
    """A node_exporter ``/metrics`` endpoint, scraped twice ``interval`` seconds apart."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        interval: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parsed = httpx.URL(url)
        self._url = str(parsed.copy_with(path="/metrics")) if parsed.path in ("", "/") else url
        self._client = client
        self._interval = interval
        self._sleep = sleep

    async def _scrape(self) -> list[Sample]:
        text = await fetch_text(self._client, self._url, service="node_exporter")
        try:
            return parse_metrics_text(text)
        except ValueError as exc:
            raise IntegrationError(f"node_exporter at {self._url}: {exc}", retryable=False) from exc

    async def snapshot(self, target: str) -> ResourceSnapshot:
        first = await self._scrape()
        await self._sleep(self._interval)
        second = await self._scrape()
        if not any(sample.name.startswith("node_") for sample in second):
            raise UserError(f"{self._url} serves no node_exporter metrics")
        return snapshot_from_samples(
            target or self._url,
            f"node_exporter {self._url}",
            second,
            cpu_busy_pct=cpu_busy_between(first, second),
        )


async def check_resources(
    source: ResourceSource, target: str, thresholds: ResourceThresholds | None = None
) -> ResourceReport:
    """Fetch a snapshot for ``target`` and evaluate it."""
    limits = thresholds or ResourceThresholds()
    snapshot = await source.snapshot(target)
    return ResourceReport(snapshot, limits, tuple(evaluate_resources(snapshot, limits)))
