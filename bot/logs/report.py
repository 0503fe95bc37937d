"""The log report: built from merged counts, rendered as JSON or a short text.

Everything here is pure (values in, values out), so the CLI table, the
``--json`` output and the Slack summary all read one model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.logs.counts import Partial
from bot.logs.errorlog import ErrorLogStats
from bot.logs.sketch import add_counts, percentile, top
from bot.logs.spikes import MinuteCounts, Spike, SpikeConfig, detect_spikes
from bot.logs.times import iso

TOP_N = 10
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True)
class Ranked:
    name: str
    count: int

    def to_dict(self, key: str) -> dict[str, Any]:
        return {key: self.name, "count": self.count}


@dataclass(frozen=True)
class Latency:
    field: str  # the variable or directive it comes from
    count: int
    p50: float
    p95: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "count": self.count,
            "p50": round(self.p50, 6),
            "p95": round(self.p95, 6),
            "p99": round(self.p99, 6),
            "max": round(self.max, 6),
        }


@dataclass(frozen=True)
class MinuteRow:
    minute: int
    requests: int
    classes: dict[str, int]
    codes_5xx: dict[int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "minute": iso(self.minute),
            "requests": self.requests,
            **self.classes,
            "codes_5xx": {str(code): count for code, count in self.codes_5xx.items()},
        }


@dataclass(frozen=True)
class CodeSeen:
    count: int
    first: int  # minute
    last: int  # minute


@dataclass(frozen=True)
class ErrorGroupRow:
    server: str
    level: str
    pattern: str
    code: str | None
    count: int
    first: int | None
    last: int | None
    sample: str
    in_worst_spike: int
    upstreams: list[Ranked]

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "level": self.level,
            "pattern": self.pattern,
            "code": self.code,
            "count": self.count,
            "first": iso(self.first),
            "last": iso(self.last),
            "in_worst_spike": self.in_worst_spike,
            "top_upstreams": [item.to_dict("upstream") for item in self.upstreams],
            "sample": self.sample,
        }


@dataclass(frozen=True)
class ErrorLogReport:
    sources: list[str]
    lines: int
    parsed: int
    groups: list[ErrorGroupRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "lines": self.lines,
            "parsed": self.parsed,
            "unparsed": self.lines - self.parsed,
            "groups": [group.to_dict() for group in self.groups],
        }


@dataclass(frozen=True)
class SpikeReport:
    spike: Spike
    top_paths: list[Ranked]
    top_upstreams: list[Ranked]
    top_clients: list[Ranked]
    top_hosts: list[Ranked]
    latency: Latency | None
    error_groups: list[Ranked]  # error-log patterns during the spike

    def to_dict(self) -> dict[str, Any]:
        spike = self.spike
        return {
            "start": iso(spike.start),
            "end": iso(spike.end),
            "minutes": spike.minutes,
            "requests": spike.requests,
            "errors": spike.errors,
            "peak_minute": iso(spike.peak_minute),
            "peak_rate": round(spike.peak_rate, 4),
            "baseline_rate": round(spike.baseline_rate, 4),
            "peak_ratio": round(spike.peak_ratio, 2),
            "codes": {str(code): count for code, count in spike.codes.items()},
            "top_paths": [item.to_dict("path") for item in self.top_paths],
            "top_upstreams": [item.to_dict("upstream") for item in self.top_upstreams],
            "top_clients": [item.to_dict("client") for item in self.top_clients],
            "top_hosts": [item.to_dict("host") for item in self.top_hosts],
            "latency": self.latency.to_dict() if self.latency else None,
            "error_log": [item.to_dict("pattern") for item in self.error_groups],
        }


@dataclass(frozen=True)
class LogReport:
    sources: list[str]
    format_name: str
    format_text: str
    lines: int
    parsed: int
    malformed: int
    malformed_samples: list[str]
    first: float | None
    last: float | None
    status: dict[int, int]
    minutes: list[MinuteRow]
    spikes: list[SpikeReport]
    worst: int | None  # index into spikes
    top_5xx_paths: list[Ranked]
    top_5xx_upstreams: list[Ranked]
    top_clients: list[Ranked]
    latency: Latency | None
    codes_5xx: dict[int, CodeSeen]
    error_log: ErrorLogReport | None = None

    @property
    def classes(self) -> dict[str, int]:
        return status_classes(self.status)

    @property
    def worst_spike(self) -> SpikeReport | None:
        return self.spikes[self.worst] if self.worst is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "format": {"name": self.format_name, "string": self.format_text},
            "lines": self.lines,
            "requests": self.parsed,
            "malformed": self.malformed,
            "malformed_samples": self.malformed_samples,
            "first": iso(self.first),
            "last": iso(self.last),
            "status": {str(code): count for code, count in sorted(self.status.items())},
            "status_classes": self.classes,
            "codes_5xx": {
                str(code): {"count": seen.count, "first": iso(seen.first), "last": iso(seen.last)}
                for code, seen in sorted(self.codes_5xx.items())
            },
            "spikes": [spike.to_dict() for spike in self.spikes],
            "worst_spike": self.worst,
            "top_5xx_paths": [item.to_dict("path") for item in self.top_5xx_paths],
            "top_5xx_upstreams": [item.to_dict("upstream") for item in self.top_5xx_upstreams],
            "top_clients": [item.to_dict("client") for item in self.top_clients],
            "latency": self.latency.to_dict() if self.latency else None,
            "per_minute": [row.to_dict() for row in self.minutes],
            "error_log": self.error_log.to_dict() if self.error_log else None,
        }


def status_classes(status: Mapping[int, int]) -> dict[str, int]:
    classes = dict.fromkeys(CLASSES, 0)
    for code, count in status.items():
        name = f"{code // 100}xx"
        classes[name] = classes.get(name, 0) + count
    return classes


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _ranked(counts: Mapping[bytes, int], n: int = TOP_N) -> list[Ranked]:
    return [Ranked(_text(key), count) for key, count in top(counts, n)]


def _merged(per_minute: Mapping[int, Mapping[bytes, int]], start: int, end: int) -> dict[bytes, int]:
    total: dict[bytes, int] = {}
    for minute, counts in per_minute.items():
        if start <= minute < end:
            add_counts(total, counts)
    return total


def _latency(histogram: Mapping[int, int], field_name: str | None) -> Latency | None:
    count = sum(histogram.values())
    if field_name is None or count == 0:
        return None
    p50, p95, p99, high = (percentile(histogram, q) for q in (0.5, 0.95, 0.99, 1.0))
    assert p50 is not None and p95 is not None and p99 is not None and high is not None
    return Latency(field_name, count, p50, p95, p99, high)


def _latency_between(partial: Partial, start: int, end: int) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for (minute, bucket), count in partial.latency.items():
        if start <= minute < end:
            histogram[bucket] = histogram.get(bucket, 0) + count
    return histogram


def build_report(
    partial: Partial,
    *,
    sources: Sequence[str],
    format_name: str,
    format_text: str,
    latency_field: str | None,
    errors: ErrorLogStats | None = None,
    spike_config: SpikeConfig | None = None,
) -> LogReport:
    """The report for merged counts (pure: no I/O)."""
    status: dict[int, int] = {}
    per_minute: dict[int, dict[int, int]] = {}
    for (minute, code), count in partial.status.items():
        status[code] = status.get(code, 0) + count
        codes = per_minute.setdefault(minute, {})
        codes[code] = codes.get(code, 0) + count
    rows: list[MinuteRow] = []
    counts: list[MinuteCounts] = []
    codes_5xx: dict[int, CodeSeen] = {}
    for minute in sorted(per_minute):
        codes = per_minute[minute]
        fives = {code: n for code, n in sorted(codes.items()) if 500 <= code <= 599}
        requests = sum(codes.values())
        rows.append(MinuteRow(minute, requests, status_classes(codes), fives))
        counts.append(MinuteCounts(minute, requests, sum(fives.values()), fives))
        for code, n in fives.items():
            seen = codes_5xx.get(code)
            codes_5xx[code] = (
                CodeSeen(n, minute, minute) if seen is None else CodeSeen(seen.count + n, seen.first, minute)
            )
    spikes = detect_spikes(counts, spike_config)
    error_groups = errors.ranked() if errors else []
    spike_reports = [
        SpikeReport(
            spike=spike,
            top_paths=_ranked(_merged(partial.fail_paths, spike.start, spike.end)),
            top_upstreams=_ranked(_merged(partial.fail_upstreams, spike.start, spike.end)),
            top_clients=_ranked(_merged(partial.fail_clients, spike.start, spike.end)),
            top_hosts=_ranked(_merged(partial.fail_hosts, spike.start, spike.end)),
            latency=_latency(_latency_between(partial, spike.start, spike.end), latency_field),
            error_groups=sorted(
                (
                    Ranked(group.pattern, inside)
                    for group in error_groups
                    if (inside := group.between(spike.start, spike.end))
                ),
                key=lambda item: -item.count,
            )[:TOP_N],
        )
        for spike in spikes
    ]
    worst_index = (
        max(range(len(spikes)), key=lambda i: (spikes[i].excess, spikes[i].peak_ratio)) if spikes else None
    )
    worst = spikes[worst_index] if worst_index is not None else None
    whole: dict[int, int] = {}
    for (_, bucket), count in partial.latency.items():
        whole[bucket] = whole.get(bucket, 0) + count
    first, last = partial.first, partial.last
    if per_minute:
        # Stamps come from chunk edges; minute counts see every line, so they
        # win when a stray early or late line fell inside a chunk.
        low, high = min(per_minute), max(per_minute)
        first = low if first is None or first // 60 * 60 > low else first
        last = high if last is None or last // 60 * 60 < high else last
    error_report = None
    if errors is not None:
        error_report = ErrorLogReport(
            sources=errors.sources,
            lines=errors.lines,
            parsed=errors.parsed,
            groups=[
                ErrorGroupRow(
                    server=group.server,
                    level=group.level,
                    pattern=group.pattern,
                    code=group.code,
                    count=group.count,
                    first=group.first,
                    last=group.last,
                    sample=group.sample,
                    in_worst_spike=group.between(worst.start, worst.end) if worst else 0,
                    upstreams=[Ranked(name, n) for name, n in group.top_upstreams()],
                )
                for group in error_groups
            ],
        )
    return LogReport(
        sources=list(sources),
        format_name=format_name,
        format_text=format_text,
        lines=partial.lines,
        parsed=partial.parsed,
        malformed=partial.malformed,
        malformed_samples=list(partial.samples),
        first=first,
        last=last,
        status=dict(sorted(status.items())),
        minutes=rows,
        spikes=spike_reports,
        worst=worst_index,
        top_5xx_paths=_ranked(_merged(partial.fail_paths, -(2**62), 2**62)),
        top_5xx_upstreams=_ranked(_merged(partial.fail_upstreams, -(2**62), 2**62)),
        top_clients=_ranked(partial.clients),
        latency=_latency(whole, latency_field),
        codes_5xx=codes_5xx,
        error_log=error_report,
    )


# --- text ------------------------------------------------------------------


def _clock(seconds: float | None) -> str:
    stamp = iso(seconds)
    return stamp[11:16] if stamp else "?"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _list(items: Sequence[Ranked], n: int = 3) -> str:
    return ", ".join(f"{item.name} ({item.count:,})" for item in items[:n])


def summarize(report: LogReport) -> str:
    """A few lines for chat: volume, status mix, the worst spike, latency, error log."""
    lines: list[str] = []
    span = f"{iso(report.first) or '?'} – {iso(report.last) or '?'}"
    malformed = f" ({report.malformed:,} malformed lines skipped)" if report.malformed else ""
    lines.append(f"{report.parsed:,} requests, {span}{malformed}.")
    classes = report.classes
    lines.append(
        "Status: "
        + " · ".join(f"{name} {_share(count, report.parsed)}" for name, count in classes.items() if count)
    )
    spike = report.worst_spike
    if spike is None:
        lines.append("No 5xx spike.")
    else:
        core = spike.spike
        codes = " · ".join(f"{code} ×{count:,}" for code, count in core.codes.items())
        others = f" ({len(report.spikes) - 1} more)" if len(report.spikes) > 1 else ""
        lines.append(
            f"5xx spike {_clock(core.start)}–{_clock(core.end)} UTC ({core.minutes} min){others}: "
            f"peak {core.peak_rate:.1%} at {_clock(core.peak_minute)}, ×{core.peak_ratio:.0f} the "
            f"baseline {core.baseline_rate:.2%}; {codes}"
        )
        details = [
            f"{label}: {_list(items)}"
            for label, items in (
                ("paths", spike.top_paths),
                ("upstreams", spike.top_upstreams),
                ("clients", spike.top_clients),
            )
            if items
        ]
        if details:
            lines.append("  " + " · ".join(details))
    if report.latency is not None:
        latency = report.latency
        text = (
            f"Latency p50 {_seconds(latency.p50)} · p95 {_seconds(latency.p95)} · p99 {_seconds(latency.p99)}"
        )
        if spike is not None and spike.latency is not None:
            text += f"; in the spike p95 {_seconds(spike.latency.p95)} · p99 {_seconds(spike.latency.p99)}"
        lines.append(text)
    if report.error_log is not None and report.error_log.groups:
        group = max(report.error_log.groups, key=lambda row: (row.in_worst_spike, row.count))
        inside = f", {group.in_worst_spike:,} in the spike" if spike is not None else ""
        lines.append(f"Error log: “{group.pattern}” ×{group.count:,}{inside}")
    return "\n".join(lines)
