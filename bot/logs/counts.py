"""Mergeable counts of access-log lines, and the small helpers both parsers share.

``Partial`` is what a worker process sends back: per-minute tables and
bounded counters, never anything per line, so merging the results of any
number of chunks costs the same memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.logs.sketch import add_bounded, add_counts

CLIENT_KEEP = 2000  # overall clients kept (pruned at four times this)
FAIL_KEEP = 25  # per minute and dimension, among 5xx lines
SAMPLE_LIMIT = 3
SAMPLE_CHARS = 300
_LIST_SPLIT = re.compile(rb", | : ")


@dataclass
class Partial:
    """Counts from some chunks; ``merge`` adds another's. Picklable (it
    travels back from worker processes)."""

    lines: int = 0
    parsed: int = 0
    malformed: int = 0
    samples: list[str] = field(default_factory=list)
    status: dict[tuple[int, int], int] = field(default_factory=dict)  # (minute, code)
    latency: dict[tuple[int, int], int] = field(default_factory=dict)  # (minute, bucket)
    clients: dict[bytes, int] = field(default_factory=dict)
    fail_paths: dict[int, dict[bytes, int]] = field(default_factory=dict)
    fail_upstreams: dict[int, dict[bytes, int]] = field(default_factory=dict)
    fail_clients: dict[int, dict[bytes, int]] = field(default_factory=dict)
    fail_hosts: dict[int, dict[bytes, int]] = field(default_factory=dict)
    first: float | None = None
    last: float | None = None
    offsets: dict[int, int] = field(default_factory=dict)  # UTC offset (s) → lines

    def merge(self, other: Partial) -> None:
        self.lines += other.lines
        self.parsed += other.parsed
        self.malformed += other.malformed
        self.samples.extend(other.samples[: max(0, SAMPLE_LIMIT - len(self.samples))])
        add_counts(self.status, other.status)
        add_counts(self.latency, other.latency)
        add_bounded(self.clients, other.clients, CLIENT_KEEP)
        for mine, theirs in (
            (self.fail_paths, other.fail_paths),
            (self.fail_upstreams, other.fail_upstreams),
            (self.fail_clients, other.fail_clients),
            (self.fail_hosts, other.fail_hosts),
        ):
            for minute, counts in theirs.items():
                add_bounded(mine.setdefault(minute, {}), counts, FAIL_KEEP)
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last
        add_counts(self.offsets, other.offsets)


def request_path(request: bytes) -> bytes:
    """``GET /a/b?x=1 HTTP/1.1`` → ``/a/b`` (the query is dropped: it splits
    one failing endpoint into thousands of rows)."""
    parts = request.split(b" ")
    target = parts[1] if len(parts) > 1 else parts[0]
    return target.split(b"?", 1)[0][:SAMPLE_CHARS]


def split_list(value: bytes) -> list[bytes]:
    """nginx lists (``a, b : c``) → their items, without ``-``."""
    return [item for item in _LIST_SPLIT.split(value) if item and item != b"-"]


def latency_seconds(text: bytes, scale: float) -> float | None:
    """``0.123`` → 0.123; ``0.1, 0.2 : 0.3`` (nginx upstream lists) → their
    sum; ``-`` or junk → None."""
    total = 0.0
    seen = False
    for part in _LIST_SPLIT.split(text):
        if part in (b"-", b""):
            continue
        try:
            total += float(part)
        except ValueError:
            return None
        seen = True
    return total * scale if seen else None
