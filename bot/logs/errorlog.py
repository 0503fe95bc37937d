"""nginx and Apache error logs → messages grouped by pattern, with when they happened.

A message's pattern is the message with what varies between occurrences
replaced (addresses, hosts, URLs, paths, quoted strings, numbers), so
``connect() failed (111: Connection refused) while connecting to upstream``
from every client and upstream is one row. nginx's trailing context
(``, client: …, upstream: "…"``) and Apache's ``[client …]`` / ``, referer: …``
are cut off the pattern; upstreams are kept per group, since "which backend"
is the next question.

Error logs are far smaller than access logs, so lines are parsed one by one.
Their times carry no UTC offset: the caller passes the offset to apply
(the access logs' own, when they have one).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.errors import UserError
from bot.logs.sketch import add_bounded, top
from bot.logs.sources import inspect_source, iter_chunks, open_stream
from bot.logs.times import MONTHS

MAX_GROUPS = 500
OTHER = "(other messages)"
_UPSTREAM_KEEP = 10

_NGINX = re.compile(
    r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d) \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$", re.DOTALL
)
_APACHE = re.compile(
    r"^\[\w{3} (\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? (\d{4})\] "
    r"\[(?:[\w-]+:)?(\w+)\](?: \[pid [^\]]*\])?(?: \[client ([^\]]*)\])? ?(.*)$",
    re.DOTALL,
)
_APACHE_CLIENT = re.compile(r"\[client ([^\]]*)\] ")
_NGINX_CONTEXT = re.compile(r'(\w+): ("(?:[^"\\]|\\.)*"|[^,]*)')
_AH_CODE = re.compile(r"\bAH\d{5}\b")

_REPLACEMENTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'"[^"]*"'), '"…"'),
    (re.compile(r"\b[a-zA-Z][\w+.-]*://\S+"), "<url>"),
    (re.compile(r"\bunix:\S+"), "unix:<path>"),
    (re.compile(r"\[[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\](?::\d+)?"), "<ip>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w<>])/[\w.\-/%~+]+"), "<path>"),
    (re.compile(r"\b(?:[a-zA-Z0-9-]+\.)+[a-zA-Z]{2,}(?::\d+)?\b"), "<host>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalize_message(message: str) -> str:
    """The pattern of a message: variable parts replaced, at most 200 characters."""
    for pattern, replacement in _REPLACEMENTS:
        message = pattern.sub(replacement, message)
    return message.strip()[:200]


@dataclass(frozen=True)
class ErrorEntry:
    """One parsed error-log line."""

    server: str  # nginx | apache
    time: int  # epoch seconds (UTC after the offset)
    level: str
    message: str  # without the trailing context
    upstream: str | None
    client: str | None


def _upstream_host(value: str) -> str:
    """``"http://10.0.1.5:8080/api"`` → ``10.0.1.5:8080``."""
    value = value.strip('"')
    if "://" in value:
        value = value.split("://", 1)[1]
    return value.split("/", 1)[0] if not value.startswith("unix:") else value


def parse_error_line(line: str, offset: int = 0) -> ErrorEntry | None:
    """An nginx or Apache (2.2 / 2.4) error-log line, or None for anything else
    (continuation lines, PHP backtraces…). ``offset`` is the log's UTC offset
    in seconds."""
    match = _NGINX.match(line)
    if match is not None:
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        try:
            stamp = calendar.timegm((year, month, day, hour, minute, second)) - offset
        except (ValueError, OverflowError):
            return None
        text = match.group(8).rstrip()
        head, _, context = text.partition(", client: ")
        fields = dict(_NGINX_CONTEXT.findall("client: " + context)) if context else {}
        upstream = fields.get("upstream")
        client = fields.get("client")
        return ErrorEntry(
            "nginx",
            stamp,
            match.group(7),
            head,
            _upstream_host(upstream) if upstream else None,
            client.strip('"') if client else None,
        )
    match = _APACHE.match(line)
    if match is not None:
        month_number = MONTHS.get(match.group(1).encode())
        if month_number is None:
            return None
        day, hour, minute, second, year = (int(match.group(i)) for i in range(2, 7))
        try:
            stamp = calendar.timegm((year, month_number, day, hour, minute, second)) - offset
        except (ValueError, OverflowError):
            return None
        rest = match.group(9).rstrip()
        client = match.group(8)
        inner = _APACHE_CLIENT.search(rest)  # 2.4 puts it after an "(errno)text: " prefix
        if inner is not None:
            client = client or inner.group(1)
            rest = rest[: inner.start()] + rest[inner.end() :]
        rest = rest.split(", referer: ", 1)[0]
        upstream_match = re.search(r"\b(?:remote server|connect to|to) (\S+?:\d+)\b", rest)
        return ErrorEntry(
            "apache",
            stamp,
            match.group(7),
            rest,
            upstream_match.group(1) if upstream_match else None,
            client.rsplit(":", 1)[0] if client else None,
        )
    return None


@dataclass
class ErrorGroup:
    """Occurrences of one message pattern."""

    server: str
    level: str
    pattern: str
    code: str | None  # Apache's AH number, when the message has one
    count: int = 0
    first: int | None = None
    last: int | None = None
    sample: str = ""
    minutes: dict[int, int] = field(default_factory=dict)  # minute → count
    upstreams: dict[str, int] = field(default_factory=dict)

    def add(self, entry: ErrorEntry) -> None:
        self.count += 1
        if not self.sample:
            self.sample = entry.message[:300]
        if self.first is None or entry.time < self.first:
            self.first = entry.time
        if self.last is None or entry.time > self.last:
            self.last = entry.time
        minute = entry.time // 60 * 60
        self.minutes[minute] = self.minutes.get(minute, 0) + 1
        if entry.upstream:
            add_bounded(self.upstreams, {entry.upstream: 1}, _UPSTREAM_KEEP)

    def between(self, start: int, end: int) -> int:
        """Occurrences in ``[start, end)`` (epoch seconds, minute-aligned)."""
        return sum(count for minute, count in self.minutes.items() if start <= minute < end)

    def top_upstreams(self, n: int = 3) -> list[tuple[str, int]]:
        return top(self.upstreams, n)


@dataclass
class ErrorLogStats:
    sources: list[str] = field(default_factory=list)
    lines: int = 0
    parsed: int = 0
    groups: dict[tuple[str, str, str], ErrorGroup] = field(default_factory=dict)

    @property
    def unparsed(self) -> int:
        return self.lines - self.parsed

    def add(self, entry: ErrorEntry) -> None:
        self.parsed += 1
        code_match = _AH_CODE.search(entry.message)
        pattern = normalize_message(entry.message)
        key = (entry.server, entry.level, pattern)
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                key = (entry.server, entry.level, OTHER)
                group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = ErrorGroup(
                    entry.server, entry.level, key[2], code_match.group(0) if code_match else None
                )
        group.add(entry)

    def ranked(self) -> list[ErrorGroup]:
        return sorted(self.groups.values(), key=lambda group: (-group.count, group.pattern))


def analyse_error_logs(paths: Sequence[str], offset: int = 0) -> ErrorLogStats:
    """Group the lines of nginx/Apache error logs (plain, gzip or ``-``)."""
    stats = ErrorLogStats(sources=list(paths))
    for path in paths:
        source = inspect_source(path)
        with open_stream(source) as stream:
            for chunk in iter_chunks(stream, source.name):
                for raw in chunk.split(b"\n"):
                    if not raw.strip():
                        continue
                    stats.lines += 1
                    entry = parse_error_line(raw.decode("utf-8", "replace"), offset)
                    if entry is not None:
                        stats.add(entry)
    if stats.lines and not stats.parsed:
        raise UserError(f"no line of {', '.join(paths)} looks like an nginx or Apache error log")
    return stats
