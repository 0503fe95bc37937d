"""Rich tables for a log report (command-line output).

Value in, renderables out: nothing is printed here. Every value that comes
from a log goes in as ``Text``, never as markup, since a request path like
``/[bold]`` must print as written.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from bot.logs.report import LogReport, MinuteRow, Ranked
from bot.logs.times import iso

_AROUND = 5  # minutes shown either side of the worst spike
_CLASS_STYLE = {"5xx": "bold red", "4xx": "yellow", "2xx": "green"}


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def summary_table(report: LogReport) -> Table:
    table = Table(title="Access logs", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("sources", Text(", ".join(report.sources)))
    table.add_row("format", Text(f"{report.format_name}: {report.format_text}"))
    table.add_row("lines", f"{report.lines:,}")
    table.add_row("requests", f"{report.parsed:,}")
    malformed = Text(f"{report.malformed:,}", style="yellow" if report.malformed else "")
    for sample in report.malformed_samples:
        malformed.append(f"\n{sample}", style="dim")
    table.add_row("malformed", malformed)
    table.add_row("first", iso(report.first) or "—")
    table.add_row("last", iso(report.last) or "—")
    if report.latency is not None:
        latency = report.latency
        table.add_row(
            "latency",
            f"p50 {_seconds(latency.p50)} · p95 {_seconds(latency.p95)} · p99 {_seconds(latency.p99)} "
            f"· max {_seconds(latency.max)} ({latency.field})",
        )
    return table


def status_table(report: LogReport) -> Table:
    table = Table(title="Status codes")
    table.add_column("code")
    table.add_column("requests", justify="right")
    table.add_column("share", justify="right")
    table.add_column("first / last (5xx)")
    for code, count in report.status.items():
        seen = report.codes_5xx.get(code)
        when = f"{iso(seen.first)} / {iso(seen.last)}" if seen else ""
        style = _CLASS_STYLE.get(f"{code // 100}xx", "")
        table.add_row(Text(str(code), style=style), f"{count:,}", _pct(count, report.parsed), when)
    for name, count in report.classes.items():
        if count:
            table.add_row(Text(name, style="bold"), f"{count:,}", _pct(count, report.parsed), "")
    return table


def spikes_table(report: LogReport) -> Table:
    table = Table(title="5xx spikes")
    for column in ("start", "end", "min", "5xx / requests", "peak", "× baseline", "codes"):
        table.add_column(column, justify="right" if column in ("min", "× baseline") else "left")
    for index, item in enumerate(report.spikes):
        spike = item.spike
        style = "bold red" if index == report.worst else ""
        table.add_row(
            Text(iso(spike.start) or "", style=style),
            iso(spike.end) or "",
            str(spike.minutes),
            f"{spike.errors:,} / {spike.requests:,}",
            f"{spike.peak_rate:.1%} at {(iso(spike.peak_minute) or '')[11:16]}",
            f"{spike.peak_ratio:.1f}",
            " ".join(f"{code}×{count:,}" for code, count in spike.codes.items()),
        )
    if not report.spikes:
        table.add_row(Text("no 5xx spike", style="green"), "", "", "", "", "", "")
    return table


def _ranked_table(title: str, columns: Sequence[tuple[str, Sequence[Ranked]]]) -> Table:
    table = Table(title=title)
    for name, _ in columns:
        table.add_column(name, overflow="fold")
        table.add_column("n", justify="right")
    depth = max((len(items) for _, items in columns), default=0)
    for row in range(depth):
        cells: list[Text | str] = []
        for _, items in columns:
            if row < len(items):
                cells += [Text(items[row].name), f"{items[row].count:,}"]
            else:
                cells += ["", ""]
        table.add_row(*cells)
    return table


def worst_spike_tables(report: LogReport) -> list[Table]:
    spike = report.worst_spike
    if spike is None:
        return []
    core = spike.spike
    title = f"Worst spike {iso(core.start)} – {iso(core.end)}: 5xx responses by"
    columns = [("path", spike.top_paths), ("upstream", spike.top_upstreams), ("client", spike.top_clients)]
    if spike.top_hosts:
        columns.append(("host", spike.top_hosts))
    tables = [_ranked_table(title, [(name, items) for name, items in columns if items])]
    if spike.latency is not None and report.latency is not None:
        latency = Table(title="Latency: whole log vs worst spike")
        for column in ("", "p50", "p95", "p99", "max", "requests"):
            latency.add_column(column, justify="right")
        for label, value in (("whole log", report.latency), ("worst spike", spike.latency)):
            latency.add_row(
                label,
                _seconds(value.p50),
                _seconds(value.p95),
                _seconds(value.p99),
                _seconds(value.max),
                f"{value.count:,}",
            )
        tables.append(latency)
    rows = [
        row for row in report.minutes if core.start - _AROUND * 60 <= row.minute < core.end + _AROUND * 60
    ]
    tables.append(minutes_table(rows, core.start, core.end))
    return tables


def minutes_table(rows: Sequence[MinuteRow], start: int, end: int) -> Table:
    table = Table(title="Requests per minute around the worst spike (UTC)")
    for column in ("minute", "requests", "2xx", "3xx", "4xx", "5xx", "5xx %", "5xx codes"):
        table.add_column(column, justify="left" if column in ("minute", "5xx codes") else "right")
    for row in rows:
        inside = start <= row.minute < end
        table.add_row(
            Text((iso(row.minute) or "")[:16].replace("T", " "), style="bold red" if inside else ""),
            f"{row.requests:,}",
            f"{row.classes.get('2xx', 0):,}",
            f"{row.classes.get('3xx', 0):,}",
            f"{row.classes.get('4xx', 0):,}",
            Text(f"{row.classes.get('5xx', 0):,}", style="red" if inside else ""),
            _pct(row.classes.get("5xx", 0), row.requests),
            " ".join(f"{code}×{count}" for code, count in row.codes_5xx.items()),
        )
    return table


def overall_tables(report: LogReport) -> list[Table]:
    columns = [("5xx path", report.top_5xx_paths), ("5xx upstream", report.top_5xx_upstreams)]
    columns.append(("client (all requests)", report.top_clients))
    present = [(name, items) for name, items in columns if items]
    return [_ranked_table("Whole log", present)] if present else []


def error_log_table(report: LogReport) -> list[Table]:
    errors = report.error_log
    if errors is None:
        return []
    table = Table(title=f"Error log: {errors.parsed:,} of {errors.lines:,} lines grouped by message")
    for column in ("count", "in spike", "level", "pattern", "first", "last", "upstreams"):
        table.add_column(column, justify="right" if column in ("count", "in spike") else "left")
        if column == "pattern":
            table.columns[-1].overflow = "fold"
    for group in errors.groups[:20]:
        table.add_row(
            f"{group.count:,}",
            Text(f"{group.in_worst_spike:,}", style="bold red" if group.in_worst_spike else ""),
            f"{group.server} {group.level}",
            Text(group.pattern),
            (iso(group.first) or "")[11:19],
            (iso(group.last) or "")[11:19],
            Text(", ".join(f"{item.name} ({item.count})" for item in group.upstreams)),
        )
    return [table]


def log_tables(report: LogReport) -> list[Table]:
    """Every table of the report, in reading order."""
    return [
        summary_table(report),
        status_table(report),
        spikes_table(report),
        *worst_spike_tables(report),
        *overall_tables(report),
        *error_log_table(report),
    ]
