"""The targets of `make bench`, each checked against the figures of a run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

DELTA_P50_MS = 10.0
DELTA_P99_MS = 50.0
FLOOR_RATIO = 1.05
BASELINE_RATIO = 0.70
SOCKET_KIB = 100.0
LINEAR_EFFICIENCY = 0.8  # speedup / workers counted as near-linear
MACHINE_SATURATED_PCT = 85.0  # of all cores, averaged over the run
PROCESS_SATURATED_PCT = 90.0  # of one core: a single-threaded process can do no more
CAPACITY_IMAGES = 100  # slow jimeng calls one image_worker must hold (the figure)
CAPACITY_BUSY_SHARE = 0.95  # of LLM_CONCURRENCY, time-weighted, while a backlog waits


@dataclass(frozen=True)
class Verdict:
    name: str
    target: str
    measured: str
    ok: bool | None  # None: not measured in this run
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def busiest(run: dict[str, Any], count: int = 3) -> str:
    procs = run.get("processes", {})
    top = sorted(procs.items(), key=lambda kv: -kv[1]["cpu_pct"])[:count]
    machine = run.get("machine", {})
    parts = ", ".join(f"{name} {use['cpu_pct']:.0f}%" for name, use in top)
    return (
        f"machine CPU {machine.get('cpu_pct', 0):.0f}% of all cores "
        f"({machine.get('others_pct', 0):.0f}% of a core by other work); busiest (of one core): {parts}"
    )


def slowest_consumer(run: dict[str, Any]) -> str:
    """The consumer that spends longest per message, from the services' /metrics."""
    handled = [
        (process, queue, h)
        for process, data in (run.get("consumers") or {}).items()
        for queue, h in data["handled"].items()
        if queue != "llm.tasks" and queue != "image.tasks"  # those wait for the upstreams by design
    ]
    if not handled:
        return ""
    process, queue, h = max(handled, key=lambda item: item[2]["mean_ms"])
    return f"{process} ← {queue}: {h['mean_ms']:.0f} ms a message, {h['busy_share']:.0f} at once on average"


def diagnosis(run: dict[str, Any]) -> str:
    """Where to look: the slowest consumer, the event loops, the broker, the CPU."""
    probes = run.get("probes") or {}
    lag = _num(_get(probes, "loop_lag_ms", "gateway", "p50"))
    confirm = _num(_get(probes, "broker_confirm_ms", "quorum", "p50"))
    parts = [slowest_consumer(run)]
    if not math.isnan(lag):
        parts.append(f"gateway event-loop lag p50 {lag:.0f} ms")
    if not math.isnan(confirm):
        parts.append(f"broker confirm p50 {confirm:.0f} ms")
    parts.append(busiest(run))
    return "; ".join(p for p in parts if p)


def check_events(results: dict[str, Any]) -> list[Verdict]:
    run = results.get("overhead")
    if not run:
        return []
    readers = run["readers"]
    out = []
    for label, key in (
        ("text delta (receipt − ts)", "delta_lag_ms"),
        ("durable event (receipt − at)", "event_lag_ms"),
    ):
        for q, limit in (("p50", DELTA_P50_MS), ("p99", DELTA_P99_MS)):
            value = _num(_get(run, key, q))
            ok = None if math.isnan(value) else value <= limit
            why = "" if ok else f"{value - limit:+.1f} ms over"
            out.append(
                Verdict(
                    f"{label} overhead {q} @ {readers} readers",
                    f"≤ {limit:.0f} ms",
                    f"{value:.1f} ms",
                    ok,
                    why,
                )
            )
    return out


def check_floor(results: dict[str, Any]) -> list[Verdict]:
    run = results.get("overhead")
    if not run:
        return []
    ratio = _get(run, "complete_over_floor", "all pages") or {}
    p50, p95 = _num(ratio.get("p50")), _num(ratio.get("p95"))
    ok = None if math.isnan(p50) else p50 <= FLOOR_RATIO
    why = ""
    if not ok:
        over = _get(run, "over_floor_ms", "pages 1+") or {}
        parts = ", ".join(
            f"{m} +{_num(_get(over, m, 'p50')):.0f} ms" for m in ("first_delta", "text_done", "image_done")
        )
        why = f"{(p50 / FLOOR_RATIO - 1) * 100:.1f}% over the target; p50 above floor, pages 1+: {parts}"
    verdicts = [
        Verdict("page complete / floor, p50 (p95)", f"≤ {FLOOR_RATIO:.2f}", f"{p50:.3f} ({p95:.3f})", ok, why)
    ]
    base = results.get("baseline")
    if base:
        ratio = _get(base, "ours_over_baseline", "all pages") or {}
        value = _num(ratio.get("p50"))
        ok = None if math.isnan(value) else value <= BASELINE_RATIO
        best = _num(_get(base, "floor_over_baseline", "all pages", "p50"))
        why = "" if ok else f"{(value / BASELINE_RATIO - 1) * 100:.1f}% over the target"
        if not ok and best > BASELINE_RATIO:
            why += (
                f"; even the floor is {best:.3f} of the baseline: a picture cannot start before its "
                "illustration is written (ttft + its tokens), and page 0's for the character sheet too"
            )
        verdicts.append(
            Verdict(
                "page complete / sequential baseline, p50 (p95)",
                f"≤ {BASELINE_RATIO:.2f}",
                f"{value:.3f} ({_num(ratio.get('p95')):.3f})",
                ok,
                why,
            )
        )
    return verdicts


def check_sockets(results: dict[str, Any]) -> list[Verdict]:
    sockets = results.get("sockets")
    if not sockets:
        return []
    per = _num(sockets["per_reader_kib"])
    held = sockets["connected"] == sockets["sockets"]
    ok = held and per < SOCKET_KIB
    why = "" if held else f"only {sockets['connected']} of {sockets['sockets']} sockets were connected"
    if held and not ok:
        why = f"{per - SOCKET_KIB:.1f} KiB over per reader"
    return [
        Verdict(
            f"gateway memory per connected reader ({sockets['sockets']} sockets)",
            f"< {SOCKET_KIB:.0f} KiB",
            f"{per:.1f} KiB",
            ok,
            why,
        )
    ]


def saturation(run: dict[str, Any]) -> str | None:
    """Why more workers could not make a run faster on this machine, or None.

    Either every core is busy, or one process that does not scale with the workers
    (the gateway, a fake, the broker, the readers) is using all of its one core.
    """
    machine = _num(_get(run, "machine", "cpu_pct"))
    if machine >= MACHINE_SATURATED_PCT:
        return f"the machine (CPU {machine:.0f}% of all cores)"
    for name, use in run.get("processes", {}).items():
        if not name.startswith(("llm_worker", "image_worker")) and use["cpu_pct"] >= PROCESS_SATURATED_PCT:
            return f"{name} ({use['cpu_pct']:.0f}% of one core)"
    return None


def scaling_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not runs:
        return []
    base = runs[0]["pages_per_s"] / max(runs[0]["spec"]["llm_workers"], 1)
    rows = []
    for run in runs:
        workers = run["spec"]["llm_workers"]
        speedup = run["pages_per_s"] / base if base else math.nan
        rows.append(
            {
                "workers": workers,
                "pages_per_s": run["pages_per_s"],
                "speedup": round(speedup, 2),
                "efficiency": round(speedup / workers, 2),
                "saturated": saturation(run),
            }
        )
    return rows


OTHERS_NOISY_PCT = 30.0  # of one core: other work on the machine that makes a saturation verdict moot


def check_scaling(results: dict[str, Any]) -> list[Verdict]:
    runs = results.get("scaling") or []
    rows = scaling_table(runs)
    if len(rows) < 2:
        return []
    name, target = "throughput 1→N workers (speedup)", "near-linear to saturation"
    measured = " → ".join(f"{r['workers']}:{r['speedup']:.2f}x" for r in rows)
    for run, row in zip(runs, rows, strict=True):
        others = _num(_get(run, "machine", "others_pct"))
        if row["saturated"] and others >= OTHERS_NOISY_PCT:
            why = (
                f"{row['workers']} workers: {row['saturated']}, but {others:.0f}% of a core was other work "
                "on the machine: run again on a quiet machine"
            )
            return [Verdict(name, target, measured, None, why)]
        if row["saturated"]:
            where = f"saturates at {row['workers']} workers: {row['saturated']}"
            return [Verdict(name, target, measured, True, where)]
        slots = run["spec"]["llm_workers"] * run["spec"]["llm_concurrency"]
        if row["efficiency"] < LINEAR_EFFICIENCY and run["readers"] < slots:
            why = (
                f"{row['workers']} workers: efficiency {row['efficiency']:.2f}, but {run['readers']} readers "
                f"cannot fill {slots} page slots: the readers are the limit (--scale-readers)"
            )
            return [Verdict(name, target, measured, None, why)]
        if row["efficiency"] < LINEAR_EFFICIENCY:
            why = (
                f"{row['workers']} workers: efficiency {row['efficiency']:.2f} and neither the machine nor a "
                f"single process saturated; {diagnosis(run)}"
            )
            return [Verdict(name, target, measured, False, why)]
    last = rows[-1]["workers"]
    return [Verdict(name, target, measured, True, f"near-linear up to {last} workers, not saturated")]


def _ms(value: Any) -> str:
    number = _num(value)
    return "–" if math.isnan(number) else f"{number:.0f} ms"


def _image_problems(run: dict[str, Any]) -> list[str]:
    n, broker = run["tasks"], run["broker"]
    problems = []
    if run["peak_in_flight"] < n:
        problems.append(f"only {run['peak_in_flight']} of {n} jimeng calls were in flight at once")
    if broker["kept"] is False:
        problems.append("the worker's broker connection was closed or replaced during the run")
    missed = (broker.get("missed_heartbeats") or {}).get("ours")
    if missed:
        problems.append(f"RabbitMQ closed the worker's connection {missed}x for missed heartbeats")
    if run["pictures"] < n:
        problems.append(f"{run['pictures']} of {n} pictures came back ({run['failed']} failed)")
    if run["calls_beyond_tasks"] > 0 or run["duplicates"]:
        problems.append(
            f"{run['calls_beyond_tasks']} jimeng calls beyond one per task and {run['duplicates']} "
            "duplicate results: tasks were redelivered"
        )
    return problems


def _heartbeats(broker: dict[str, Any]) -> str:
    """hb kept / lost / ?: the worker's connection survived and RabbitMQ logged no missed heartbeat."""
    missed = (broker.get("missed_heartbeats") or {}).get("ours")
    if broker["kept"] is False or missed:
        return "hb lost"
    return "hb ?" if broker["kept"] is None or missed is None else "hb kept"


def check_image_capacity(run: dict[str, Any]) -> Verdict:
    n, broker = run["tasks"], run["broker"]
    missed = (broker.get("missed_heartbeats") or {}).get("ours")
    name = "image_worker: slow jimeng calls in flight (1 process)"
    measured = f"peak {run['peak_in_flight']}, {_heartbeats(broker)}"
    target = f"≥ {n}, hb kept"
    lag = _ms(_get(run, "probes", "loop_lag_ms", "image_worker", "p99"))
    problems = _image_problems(run)
    if problems:
        worst = _ms(_get(run, "probes", "loop_lag_ms", "image_worker", "max"))
        why = f"{'; '.join(problems)}; worker loop lag p99 {lag}, max {worst}"
        return Verdict(name, target, measured, False, why)
    after = _num(run.get("all_in_flight_s"))
    note = (
        f"all {n} in flight {after:.1f} s after publishing, each held {run['image_seconds']:.0f} s; "
        f"worker loop lag p99 {lag}; {run['pictures']}/{n} pictures back"
    )
    if broker["kept"] is None or missed is None:
        return Verdict(name, target, measured, None, f"{note}; heartbeats not checked: {broker['why']}")
    note += f"; same broker connection throughout (heartbeat {broker['after']['heartbeat_s']} s), 0 missed"
    if n < CAPACITY_IMAGES:
        note += f"; {n} calls, fewer than the issue's {CAPACITY_IMAGES} (--capacity-images)"
    return Verdict(name, target, measured, True, note)


def check_llm_capacity(run: dict[str, Any]) -> Verdict:
    k, share = run["concurrency"], _num(run.get("busy_share"))
    name = "llm_worker: configured concurrency busy (backlog waiting)"
    target = f"{k} of {k} (≥ {CAPACITY_BUSY_SHARE:.0%})"
    measured = f"peak {run['peak_in_flight']}, mean {_num(run.get('mean_in_flight')):.2f} ({share:.1%})"
    ok = run["peak_in_flight"] >= k and share >= CAPACITY_BUSY_SHARE and run["pages"] == run["tasks"]
    lag = _ms(_get(run, "probes", "loop_lag_ms", "llm_worker", "p99"))
    worker = _num(_get(run, "processes", "llm_worker", "cpu_pct"))
    facts = (
        f"{run['tasks']} pages queued at once; streams of {_num(run.get('mean_stream_s')):.1f} s; "
        f"{_num(run.get('pages_per_s')):.2f} pages/s of {_num(run.get('ideal_pages_per_s')):.2f} ideal; "
        f"worker loop lag p99 {lag}, CPU {worker:.0f}% of a core"
    )
    if ok:
        return Verdict(name, target, measured, True, facts)
    problems = []
    if run["peak_in_flight"] < k:
        problems.append(f"never more than {run['peak_in_flight']} of {k} streams at once")
    if share < CAPACITY_BUSY_SHARE:
        problems.append(
            f"on average {k - _num(run.get('mean_in_flight')):.2f} of {k} slots idle between one stream's "
            "end and the next one's start"
        )
    if run["pages"] < run["tasks"]:
        problems.append(f"{run['pages']} of {run['tasks']} pages written ({run['failed']} failed)")
    return Verdict(name, target, measured, False, f"{'; '.join(problems)}; {facts}")


def check_capacity(results: dict[str, Any]) -> list[Verdict]:
    found = results.get("capacity") or {}
    verdicts = []
    if found.get("images"):
        verdicts.append(check_image_capacity(found["images"]))
    if found.get("llm"):
        verdicts.append(check_llm_capacity(found["llm"]))
    return verdicts


def check_all(results: dict[str, Any]) -> list[Verdict]:
    return [
        *check_events(results),
        *check_floor(results),
        *check_sockets(results),
        *check_scaling(results),
        *check_capacity(results),
    ]
