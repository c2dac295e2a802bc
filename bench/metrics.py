"""The services' own /metrics, read at the end of a run: how long each consumer spent per
message and how busy that kept it.

FastStream's middleware records every handled message (`..._received_processed_messages_
duration_seconds`, by handler = queue) and every publish (`..._published_messages_duration_
seconds`, by destination). A handler that runs one message at a time and is busy for
nearly the whole run is a queue of its own: whatever waits on it waits in line.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

PREFIX = "storybook"
_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        found = _LINE.match(line)
        if found is None or line.startswith("#"):
            continue
        labels = dict(_LABEL.findall(found["labels"] or ""))
        try:
            out.append((found["name"], labels, float(found["value"])))
        except ValueError:
            continue
    return out


def kind_of(queue: str) -> str:
    """A queue or destination name without the run's prefix and the story id of live keys."""
    if ".live." in queue:
        return "live (text deltas and events)"
    for key in ("gateway.results", "llm.tasks", "image.tasks", "dead.notify", "dead", "control"):
        if key in queue:
            return key
    return queue


def _sum_count(
    samples: list[tuple[str, dict[str, str], float]], metric: str, label: str
) -> dict[str, list[float]]:
    totals: dict[str, list[float]] = {}
    for name, labels, value in samples:
        for suffix, slot in (("_sum", 0), ("_count", 1)):
            if name == f"{PREFIX}_{metric}{suffix}":
                totals.setdefault(kind_of(labels.get(label, "")), [0.0, 0.0])[slot] += value
    return totals


def consumers(text: str, wall: float) -> dict[str, Any]:
    """Per consumed queue: messages, mean ms each, and the share of the run it was busy;
    per destination: publishes and mean ms each (a publish waits for the broker's confirm)."""
    samples = parse(text)
    handled = _sum_count(samples, "received_processed_messages_duration_seconds", "handler")
    published = _sum_count(samples, "published_messages_duration_seconds", "destination")
    return {
        "handled": {
            kind: {
                "messages": int(count),
                "mean_ms": round(1000 * total / count, 2) if count else 0.0,
                "busy_share": round(total / wall, 3) if wall else 0.0,
            }
            for kind, (total, count) in handled.items()
        },
        "published": {
            kind: {"messages": int(count), "mean_ms": round(1000 * total / count, 2) if count else 0.0}
            for kind, (total, count) in published.items()
        },
    }


Samples = list[tuple[str, dict[str, str], float]]


def histogram_quantiles(
    samples: Samples, metric: str, label: dict[str, str], qs: tuple[float, ...]
) -> dict[str, float]:
    """Quantiles of a Prometheus histogram, interpolated inside its buckets (as PromQL's
    histogram_quantile does): the bucket a quantile falls in bounds its error."""
    buckets = sorted(
        (float(labels["le"]), value)
        for name, labels, value in samples
        if name == f"{PREFIX}_{metric}_bucket" and all(labels.get(k) == v for k, v in label.items())
    )
    if not buckets or buckets[-1][1] <= 0:
        return {}
    total = buckets[-1][1]
    out: dict[str, float] = {}
    for q in qs:
        rank, lower, below = q * total, 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if upper == float("inf"):
                    out[f"p{round(q * 100)}"] = lower
                else:
                    share = (rank - below) / (count - below) if count > below else 1.0
                    out[f"p{round(q * 100)}"] = lower + (upper - lower) * share
                break
            lower, below = upper, count
    return out


async def scrape(urls: dict[str, str], wall: float) -> dict[str, Any]:
    """name -> consumers() of its /metrics; a process that does not answer is left out."""
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        for name, url in urls.items():
            try:
                response = await http.get(f"{url}/metrics")
            except httpx.HTTPError:
                continue
            out[name] = consumers(response.text, wall)
    return out
