"""Percentiles and summaries, without numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence

QUANTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """count, mean, p50/p95/p99, max; every figure multiplied by `scale` (e.g. 1000 for ms)."""
    if not values:
        return {"n": 0}
    out = {"n": float(len(values)), "mean": scale * sum(values) / len(values)}
    for q in QUANTILES:
        out[f"p{q}"] = scale * percentile(values, q)
    out["max"] = scale * max(values)
    return out
