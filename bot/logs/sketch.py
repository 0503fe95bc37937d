"""Constant-memory summaries: bounded top-K counters and a log-scale latency histogram.

Counters of paths, clients and upstreams are pruned back to their largest
``keep`` entries whenever they grow past a multiple of it (a Misra–Gries-style
heavy-hitter sketch): the leaders stay right, the long tail is dropped, and a
file of any size costs the same memory.

Latencies go into fixed buckets, ``BUCKETS_PER_DECADE`` per power of ten from
1 µs up, so a percentile is within about 3 % of the true value and the
histogram never has more than a few hundred entries.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

BUCKETS_PER_DECADE = 40
_SMALLEST = 1e-6  # seconds; anything below (including 0) shares bucket 0
_LOG_SMALLEST = math.log10(_SMALLEST)


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a latency in seconds (0 for ≤ 1 µs)."""
    if seconds <= _SMALLEST:
        return 0
    return 1 + int((math.log10(seconds) - _LOG_SMALLEST) * BUCKETS_PER_DECADE)


def bucket_value(bucket: int) -> float:
    """A bucket's representative latency: the geometric middle of its range."""
    if bucket <= 0:
        return 0.0
    return float(10 ** (_LOG_SMALLEST + (bucket - 0.5) / BUCKETS_PER_DECADE))


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0 < q ≤ 1) of a bucket histogram, or None when empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(max(histogram))  # pragma: no cover - unreachable


def add_counts(target: dict[K, int], source: Mapping[K, int]) -> None:
    """``target += source``, key by key."""
    get = target.get
    for key, count in source.items():
        target[key] = get(key, 0) + count


def prune(counter: dict[K, int], keep: int) -> None:
    """Keep only the ``keep`` largest entries (in place)."""
    if len(counter) <= keep:
        return
    survivors = heapq.nlargest(keep, counter.items(), key=lambda item: item[1])
    counter.clear()
    counter.update(survivors)


def add_bounded(target: dict[K, int], source: Mapping[K, int], keep: int) -> None:
    """``target += source`` and prune to ``keep`` once it is four times that."""
    add_counts(target, source)
    if len(target) > 4 * keep:
        prune(target, keep)


def top(counter: Mapping[K, int], n: int) -> list[tuple[K, int]]:
    """The ``n`` largest entries, largest first (ties by key for stable output)."""
    return sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))[:n]
