"""Rich tables for the timeouts, resources and monitors reports (command-line output).

Value in, renderables out: nothing is printed here, so the CLI decides where
the tables go and tests can render them into a string.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from bot.diagnostics.finding_model import ConfigSetting, Finding, Severity, format_seconds
from bot.diagnostics.monitors import MonitorsReport, Verdict, iso_time
from bot.diagnostics.resources import ResourceReport
from bot.diagnostics.timeouts import TimeoutReport

_SEVERITY_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_VERDICT_STYLE = {
    Verdict.GLOBAL_OUTAGE: "bold red",
    Verdict.REGIONAL: "yellow",
    Verdict.HEALTHY: "green",
    Verdict.UNKNOWN: "dim",
}


def findings_table(findings: Iterable[Finding], title: str = "Findings") -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("Severity")
    table.add_column("Where", overflow="fold")
    table.add_column("About", overflow="fold")
    table.add_column("Finding", overflow="fold")
    rows = list(findings)
    for finding in rows:
        text = Text(finding.message)
        if finding.explanation:
            text.append("\n" + finding.explanation, style="dim")
        table.add_row(
            Text(finding.severity.value, style=_SEVERITY_STYLE[finding.severity]),
            str(finding.where or ""),
            finding.subject,
            text,
        )
    if not rows:
        table.add_row(Text("ok", style="green"), "", "", "nothing to report")
    return table


def _setting(setting: ConfigSetting | None) -> Text:
    if setting is None:
        return Text("—", style="dim")
    if setting.where is None:
        return Text(f"{setting.raw} (default)", style="dim")
    return Text(setting.raw)


def timeout_tables(report: TimeoutReport) -> list[Table]:
    tables: list[Table] = []
    if report.nginx is not None:
        locations = Table(title=f"nginx: {report.nginx.main_file}")
        for column in ("Server", "Location", "Passes to", "Connect", "Send", "Read", "Read set at"):
            locations.add_column(column, overflow="fold")
        for location in report.nginx.proxied_locations:
            read = location.timeout("read")
            locations.add_row(
                location.server.label,
                location.path,
                location.pass_target or "",
                _setting(location.timeout("connect")),
                _setting(location.timeout("send")),
                _setting(read),
                str(read.where or location.pass_where or ""),
            )
        tables.append(locations)
        if report.nginx.upstreams:
            upstreams = Table(title="nginx upstreams")
            for column in (
                "Upstream",
                "Server",
                "max_fails",
                "fail_timeout",
                "keepalive",
                "keepalive_timeout",
            ):
                upstreams.add_column(column, overflow="fold")
            for upstream in report.nginx.upstreams.values():
                for server in upstream.servers:
                    upstreams.add_row(
                        upstream.name,
                        server.address,
                        str(server.max_fails),
                        _setting(server.fail_timeout),
                        str(upstream.keepalive_connections or "off"),
                        _setting(upstream.keepalive_timeout),
                    )
            tables.append(upstreams)
    if report.haproxy is not None:
        proxies = Table(title=f"HAProxy: {report.haproxy.file}")
        names = ("connect", "client", "server", "queue", "http-request", "http-keep-alive")
        for column in ("Proxy", "Mode", *names, "retries", "redispatch"):
            proxies.add_column(column, overflow="fold")
        for proxy in report.haproxy.proxies:
            if proxy.kind == "defaults":
                continue
            proxies.add_row(
                proxy.label,
                proxy.mode,
                *(_setting(proxy.timeout(name)) for name in names),
                str(proxy.retries),
                "yes" if proxy.redispatch else "no",
            )
        tables.append(proxies)
    title = "Findings"
    if report.app_timeout is not None:
        title += f" (application timeout {format_seconds(report.app_timeout)})"
    tables.append(findings_table(report.findings, title))
    return tables


def _pct(value: float | None, digits: int = 0) -> str:
    return "?" if value is None else f"{value:.{digits}f} %"


def _bytes(value: float | None) -> str:
    if value is None:
        return "?"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def resource_tables(report: ResourceReport) -> list[Table]:
    s, t = report.snapshot, report.thresholds
    overview = Table(title=f"{s.target} — {s.source}")
    for column in ("Resource", "Now", "Threshold"):
        overview.add_column(column)
    overview.add_row("CPU busy", _pct(s.cpu_busy_pct), f"≥ {t.cpu_busy_pct:g} %")
    load = f"{s.load1 if s.load1 is not None else '?'} / {s.load5 if s.load5 is not None else '?'}"
    per_core = f"{s.load_per_core:.2f}" if s.load_per_core is not None else "?"
    overview.add_row(
        "Load 1m / 5m",
        f"{load} on {s.cpu_count or '?'} cores ({per_core}/core)",
        f"> {t.load_per_core:g}/core",
    )
    overview.add_row(
        "Memory available",
        f"{_bytes(s.memory_available_bytes)} of {_bytes(s.memory_total_bytes)} "
        f"({_pct(s.memory_available_pct)})",
        f"< {t.memory_available_pct:g} %",
    )
    overview.add_row(
        "Swap used",
        "no swap" if not s.swap_total_bytes else _pct(s.swap_used_pct),
        f"> {t.swap_used_pct:g} %",
    )
    fds = "?" if s.fds_maximum is None else f"{s.fds_allocated or 0:.0f} of {s.fds_maximum:.0f}"
    overview.add_row("File descriptors", f"{fds} ({_pct(s.fds_used_pct, 1)})", f"> {t.fds_used_pct:g} %")
    disks = Table(title="Filesystems")
    for column in ("Mount", "Device", "Type", "Size", "Free", "Used", "Inodes used"):
        disks.add_column(column, overflow="fold")
    for fs in s.filesystems:
        disks.add_row(
            fs.mountpoint,
            fs.device,
            fs.fstype,
            _bytes(fs.size_bytes),
            _bytes(fs.avail_bytes),
            _pct(fs.used_pct, 1),
            _pct(fs.inodes_used_pct, 1),
        )
    return [overview, disks, findings_table(report.findings)]


def monitor_tables(report: MonitorsReport) -> list[Table]:
    checks = Table(title=f"Monitors — verdict: {report.verdict.value}")
    for column in ("Provider", "Check", "State", "Verdict", "Why", "Last checked", "ms"):
        checks.add_column(column, overflow="fold")
    for assessment in report.assessments:
        check = assessment.check
        checks.add_row(
            check.provider,
            f"{check.name}\n{check.target}" if check.target else check.name,
            check.state.value,
            Text(assessment.verdict.value, style=_VERDICT_STYLE[assessment.verdict]),
            assessment.reason,
            iso_time(check.last_checked) or "",
            "" if check.response_ms is None else f"{check.response_ms:.0f}",
        )
    tables = [checks]
    regions = Table(title="Recent results per region")
    for column in ("Check", "Region", "Latest", "At", "Up", "Down", "Probes"):
        regions.add_column(column, overflow="fold")
    for assessment in report.assessments:
        for region in assessment.regions:
            if region.latest_up is None:
                latest = Text("?", style="dim")
            else:
                latest = Text("up", style="green") if region.latest_up else Text("down", style="red")
            regions.add_row(
                f"{assessment.check.provider} {assessment.check.name}",
                region.region,
                latest,
                iso_time(region.latest_at) or "",
                str(region.up),
                str(region.down),
                ", ".join(region.probes),
            )
    if regions.row_count:
        tables.append(regions)
    events = Table(title="Recent events")
    for column in ("Check", "At", "Event", "Duration", "Detail"):
        events.add_column(column, overflow="fold")
    for assessment in report.assessments:
        for event in assessment.check.events[:5]:
            events.add_row(
                f"{assessment.check.provider} {assessment.check.name}",
                iso_time(event.at) or "",
                event.kind,
                format_seconds(event.duration_s) if event.duration_s is not None else "",
                event.detail,
            )
    if events.row_count:
        tables.append(events)
    if report.errors:
        errors = Table(title="Providers that failed")
        errors.add_column("Provider")
        errors.add_column("Error", overflow="fold")
        for provider, error in report.errors:
            errors.add_row(provider, error)
        tables.append(errors)
    tables.append(findings_table(report.findings))
    return tables
