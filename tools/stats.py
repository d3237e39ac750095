"""Latency statistics for every benchmark and the load generator: one percentile rule.

Percentiles are nearest-rank (the smallest sample with at least q% of the samples at or below
it), so p99 of 100 samples is the 99th smallest and a percentile is always a measured value.
Every function answers 0 for no samples, so an empty run prints zeros instead of raising.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` from 0 to 100) of ``samples``, in any order."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be between 0 and 100, got {q}")
    if not samples:
        return 0.0
    ordered = sorted(samples)
    # The epsilon keeps q * n that lands on a whole number (99% of 100) from rounding up a rank.
    rank = max(1, min(len(ordered), int(q / 100.0 * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def p50(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def p99(samples: Sequence[float]) -> float:
    return percentile(samples, 99)


def mean(samples: Sequence[float]) -> float:
    return statistics.fmean(samples) if samples else 0.0


def summary(samples: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """n, p50, p90, p99, min, max and mean of ``samples`` times ``scale`` (1e3 for ms from s),
    rounded to ``digits``; just ``{"n": 0}`` for no samples."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50": round(p50(samples) * scale, digits),
        "p90": round(percentile(samples, 90) * scale, digits),
        "p99": round(p99(samples) * scale, digits),
        "min": round(min(samples) * scale, digits),
        "max": round(max(samples) * scale, digits),
        "mean": round(mean(samples) * scale, digits),
    }
