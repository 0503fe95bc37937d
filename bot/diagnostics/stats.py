"""Small, general statistics helpers (pure): percentiles of a sample.

Used by the HTTP probe for latency percentiles and meant to be reused by any
diagnostic that summarises numbers (log analysis, resource checks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

PercentileMethod = Literal["linear", "nearest"]


def percentile(values: Iterable[float], p: float, *, method: PercentileMethod = "linear") -> float:
    """The ``p``-th percentile (0-100) of ``values``; see :func:`percentiles`."""
    return percentiles(values, (p,), method=method)[p]


def percentiles(
    values: Iterable[float],
    ps: Sequence[float] = (50, 95, 99),
    *,
    method: PercentileMethod = "linear",
) -> dict[float, float]:
    """Percentiles of ``values``, keyed by the requested ``ps`` (each 0-100).

    ``method="linear"`` interpolates between the two nearest ranks (what numpy,
    Excel's PERCENTILE.INC and Prometheus' ``quantile_over_time`` do);
    ``method="nearest"`` returns an observed value (the nearest-rank method,
    ``ceil(p/100 * n)``-th smallest), which is what latency SLOs usually mean.

    ``percentiles([...], [50, 95, 99])[95]`` reads naturally: ints and floats
    that are equal are the same dict key. Raises ``ValueError`` for an empty
    sample, a NaN value or a ``p`` outside 0-100.
    """
    ordered = sorted(float(value) for value in values)
    if not ordered:
        raise ValueError("percentiles of an empty sample are undefined")
    if any(math.isnan(value) for value in ordered):
        raise ValueError("percentiles of a sample containing NaN are undefined")
    result: dict[float, float] = {}
    for p in ps:
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be between 0 and 100, not {p}")
        result[p] = _nearest(ordered, p) if method == "nearest" else _linear(ordered, p)
    return result


def _linear(ordered: Sequence[float], p: float) -> float:
    position = (len(ordered) - 1) * p / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def _nearest(ordered: Sequence[float], p: float) -> float:
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
