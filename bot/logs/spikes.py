"""5xx spike detection over per-minute counts. Pure: values in, values out.

For each minute with traffic, the 5xx ratio is compared with a robust
baseline: the median ratio of up to ``window`` preceding minutes that were not
themselves hot (so a long spike does not become its own baseline). Before
``min_history`` such minutes exist, the median over the whole log stands in.
A minute is hot when its ratio is at least ``max(baseline × factor, floor)``
and it has at least ``min_errors`` 5xx responses (one 502 out of two requests
at 4 a.m. is not an incident). Hot minutes no more than ``gap`` quiet
minutes apart form one spike.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MINUTE = 60


@dataclass(frozen=True)
class MinuteCounts:
    """Traffic of one minute: ``minute`` is epoch seconds of its start."""

    minute: int
    requests: int
    errors: int  # 5xx responses
    codes: Mapping[int, int] = field(default_factory=dict)  # 5xx code → count

    @property
    def rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class SpikeConfig:
    window: int = 30  # minutes of history for the baseline median
    factor: float = 3.0  # hot when the ratio is this many times the baseline…
    floor: float = 0.05  # …and at least this ratio (5 % of requests)
    min_errors: int = 5  # …and at least this many 5xx in the minute
    min_history: int = 5  # below this many baseline minutes, use the whole-log median
    gap: int = 1  # quiet minutes allowed inside one spike
    baseline_floor: float = 0.001  # peak_ratio divides by at least this (no ÷0)


@dataclass(frozen=True)
class Spike:
    start: int  # epoch seconds, first hot minute
    end: int  # epoch seconds, end of the last hot minute (exclusive)
    peak_minute: int
    peak_rate: float  # 5xx ratio of the worst minute
    baseline_rate: float  # the baseline when the spike began
    peak_ratio: float  # peak_rate / max(baseline_rate, baseline_floor)
    requests: int
    errors: int
    codes: dict[int, int]
    excess: float  # 5xx beyond what the baseline predicts: how bad it was

    @property
    def minutes(self) -> int:
        return (self.end - self.start) // MINUTE


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


@dataclass
class _Open:
    baseline: float
    minutes: list[MinuteCounts]


def _close(spike: _Open, config: SpikeConfig) -> Spike:
    hot = spike.minutes
    peak = max(hot, key=lambda counts: (counts.rate, counts.errors))
    codes: dict[int, int] = {}
    for counts in hot:
        for code, count in counts.codes.items():
            codes[code] = codes.get(code, 0) + count
    requests = sum(counts.requests for counts in hot)
    errors = sum(counts.errors for counts in hot)
    return Spike(
        start=hot[0].minute,
        end=hot[-1].minute + MINUTE,
        peak_minute=peak.minute,
        peak_rate=peak.rate,
        baseline_rate=spike.baseline,
        peak_ratio=peak.rate / max(spike.baseline, config.baseline_floor),
        requests=requests,
        errors=errors,
        codes=dict(sorted(codes.items())),
        excess=errors - spike.baseline * requests,
    )


def detect_spikes(minutes: Sequence[MinuteCounts], config: SpikeConfig | None = None) -> list[Spike]:
    """Spikes in time order. ``minutes`` may be unsorted and may skip quiet minutes."""
    config = config or SpikeConfig()
    ordered = sorted((counts for counts in minutes if counts.requests > 0), key=lambda c: c.minute)
    fallback = _median([counts.rate for counts in ordered])
    history: deque[float] = deque(maxlen=config.window)
    spikes: list[Spike] = []
    current: _Open | None = None
    for counts in ordered:
        baseline = _median(history) if len(history) >= config.min_history else fallback
        threshold = max(baseline * config.factor, config.floor)
        hot = counts.errors >= config.min_errors and counts.rate >= threshold
        if current is not None and counts.minute - current.minutes[-1].minute > (config.gap + 1) * MINUTE:
            spikes.append(_close(current, config))
            current = None
        if hot:
            if current is None:
                current = _Open(baseline, [])
            current.minutes.append(counts)
        else:
            history.append(counts.rate)
    if current is not None:
        spikes.append(_close(current, config))
    return spikes


def worst(spikes: Sequence[Spike]) -> Spike | None:
    """The spike with the most 5xx beyond its baseline."""
    return max(spikes, key=lambda spike: (spike.excess, spike.peak_ratio), default=None)
