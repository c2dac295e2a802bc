"""The fixed-width text report of a run, rendered from its JSON results."""

from __future__ import annotations

import math
from typing import Any

from bench import profiles
from bench.targets import check_all, diagnosis, scaling_table

MARK_NAMES = {
    "first_delta": "first text delta",
    "text_done": "text done",
    "image_done": "picture done",
    "complete": "page complete",
}
RULE = "─" * 104


def _f(value: Any, digits: int = 2, width: int = 7) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "–".rjust(width)
    return f"{value:{width}.{digits}f}"


def header(results: dict[str, Any]) -> list[str]:
    m, o = results["machine"], results["options"]
    lat = o["latency"]
    return [
        f"Interactive Storybook benchmark · {results['started']} · {results.get('path', '')}",
        f"machine: {m['nproc']} cores, {m['cpu_model']}, {m['memory_gib']} GiB RAM; "
        f"Python {m['python']}; RabbitMQ {m['rabbitmq']}",
        f"upstream fakes: Moonshot ttft {lat['ttft']:.2f} s, {lat['tps']:.0f} tokens/s; "
        f"jimeng {lat['image_seconds']:.2f} s a picture; "
        f"reader sockets offer compression: {o['compression']}; story store: {o.get('store', 'sqlite')}",
    ]


def targets(results: dict[str, Any]) -> list[str]:
    lines = ["", "TARGETS", f"  {'':58}{'target':>16}  {'measured':>24}", RULE]
    verdicts = check_all(results)
    for v in verdicts:
        mark = "–" if v.ok is None else ("✓" if v.ok else "✗")
        lines.append(f"  {v.name:58}{v.target:>16}  {v.measured:>24}  {mark}")
        if v.why:
            lines.append(f"      {'why' if v.ok is False else 'note'}: {v.why}")
    run = results.get("overhead")
    latency_missed = any(v.ok is False and ("readers" in v.name or "floor" in v.name) for v in verdicts)
    if run and latency_missed:
        lines.append(f"  where to look (latency run): {diagnosis(run)}")
    return lines


def latency(run: dict[str, Any]) -> list[str]:
    spec = run["spec"]
    lines = [
        "",
        f"A. LATENCY: {run['readers']} readers × {run['pages']} pages · {spec['llm_workers']} llm_worker "
        f"(concurrency {spec['llm_concurrency']}) + {spec['image_workers']} image_worker "
        f"(concurrency {spec['image_concurrency']}) · {run['pages_per_s']:.2f} pages/s",
        f"   a reader reads each page for {run.get('read_seconds', 0.0):g} s once its text is done, "
        "then chooses; page 0 is timed from POST /api/stories",
        "   (it includes the premise check and the outline), later pages from the choose frame",
        f"  {'seconds':26}{'p50':>8}{'p95':>8}{'p99':>8}  {'floor p50':>9}   "
        f"{'over floor, ms:':>15}{'p50':>7}{'p95':>7}{'p99':>7}",
        RULE,
    ]
    for group in ("page 0", "pages 1+"):
        measured = run["latency_s"].get(group, {})
        floor = run["floor_s"].get(group, {})
        over = run["over_floor_ms"].get(group, {})
        lines.append(f"  {group}")
        for mark, label in MARK_NAMES.items():
            s, fl, ov = measured.get(mark, {}), floor.get(mark, {}), over.get(mark, {})
            lines.append(
                f"    {label:24}{_f(s.get('p50'), 3, 8)}{_f(s.get('p95'), 3, 8)}{_f(s.get('p99'), 3, 8)}  "
                f"{_f(fl.get('p50'), 3, 9)}   {'':15}"
                f"{_f(ov.get('p50'), 0)}{_f(ov.get('p95'), 0)}{_f(ov.get('p99'), 0)}"
            )
        ratio = run["complete_over_floor"].get(group, {})
        lines.append(
            f"    {'complete / floor':24}{_f(ratio.get('p50'), 3, 8)}{_f(ratio.get('p95'), 3, 8)}"
            f"{_f(ratio.get('p99'), 3, 8)}"
        )
    lines += _lags(run)
    lines += _stages(run)
    calls = run.get("upstream_calls") or {}
    if calls:
        lines.append(
            f"  upstream calls the fakes served (the floor model's count): Moonshot {calls['moonshot_chat']} "
            f"({calls['moonshot_chat_modelled']}), jimeng {calls['jimeng_pictures']} "
            f"({calls['jimeng_pictures_modelled']})"
        )
    if run["failed_readers"] or run["floor_text_mismatches"] or run["images_failed"]:
        lines.append(
            f"  problems: {run['failed_readers']} readers failed {run['failures']}; "
            f"{run['images_failed']} pictures failed; "
            f"{run['floor_text_mismatches']} pages differ from the floor's text"
        )
    return lines


def _lags(run: dict[str, Any]) -> list[str]:
    lines = [f"  {'per event, ms':26}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'events':>9}"]
    for label, key in (
        ("text delta: receipt − ts", "delta_lag_ms"),
        ("durable: receipt − at", "event_lag_ms"),
    ):
        s = run[key]
        lines.append(
            f"    {label:24}{_f(s.get('p50'), 1, 8)}{_f(s.get('p95'), 1, 8)}{_f(s.get('p99'), 1, 8)}"
            f"{_f(s.get('max'), 1, 8)}{int(s.get('n', 0)):9d}"
        )
    return lines


def _stages(run: dict[str, Any]) -> list[str]:
    """Where the time goes, between moments the store recorded (`at` of durable events)."""
    lines = [
        f"  {'where the time goes, ms':38}{'p50':>7}{'p95':>7}{'floor':>7}{'over p50':>9}{'over p95':>9}"
    ]
    for group, stages in run.get("stages", {}).items():
        lines.append(f"    {group}")
        for label, s in stages.items():
            m, fl, ov = s["measured_ms"], s["floor_ms"], s["over_ms"]
            lines.append(
                f"      {label:34}{_f(m.get('p50'), 0)}{_f(m.get('p95'), 0)}{_f(fl.get('p50'), 0)}"
                f"{_f(ov.get('p50'), 0, 9)}{_f(ov.get('p95'), 0, 9)}"
            )
    return lines


def baseline(base: dict[str, Any], image_seconds: float) -> list[str]:
    n = len(base["pages"])
    lines = [
        "",
        f"B. SEQUENTIAL BASELINE: the same {n} pages, the same upstream calls made one after another",
        f"  {'seconds':26}{'p50':>8}{'p95':>8}{'p99':>8}",
        RULE,
    ]
    rows = [(f"page time, {g}", s) for g, s in base["total_s"].items()]
    rows += [("  writing (pages 1+)", base["llm_s"]), ("  drawing", base["image_s"])]
    rows += [("  download", base["download_s"])]
    rows += [(f"ours / baseline, {g}", s) for g, s in base["ours_over_baseline"].items()]
    rows += [(f"floor / baseline, {g}", s) for g, s in base.get("floor_over_baseline", {}).items()]
    for label, s in rows:
        lines.append(
            f"    {label:24}{_f(s.get('p50'), 3, 8)}{_f(s.get('p95'), 3, 8)}{_f(s.get('p99'), 3, 8)}"
        )
    lines.append("  the fakes' own time beyond their configured latency (counted against the floor):")
    excess = 1000 * (base["image_s"].get("p50", math.nan) - image_seconds)
    lines.append(
        f"    jimeng: a picture takes {image_seconds:.2f} s + {excess:.0f} ms (p50; beyond its wait)"
    )
    pace = base.get("fake_pacing") or {}
    if pace:
        lines.append(
            f"    Moonshot, one direct stream while idle: {pace['tokens']} tokens, the last at "
            f"{pace['last_token_s']:.3f} s vs {pace['schedule_s']:.3f} s on schedule "
            f"({pace['drift_ms']:+.0f} ms)"
        )
    return lines


def processes(run: dict[str, Any], title: str) -> list[str]:
    lines = ["", title, f"  {'process':26}{'CPU s':>8}{'avg %':>8}{'peak %':>8}{'peak RSS MiB':>14}", RULE]
    for name, use in sorted(run["processes"].items(), key=lambda kv: -kv[1]["cpu_s"]):
        lines.append(
            f"    {name:24}{use['cpu_s']:8.1f}{use['cpu_pct']:8.0f}{use['peak_cpu_pct']:8.0f}"
            f"{use['peak_rss_mib']:14.1f}"
        )
    m = run["machine"]
    lines.append(
        f"    {'other processes':24}{'':8}{m.get('others_pct', 0):8.0f}   (other work on the machine)"
    )
    lines.append(f"    {'machine (all cores)':24}{'':8}{m['cpu_pct']:8.0f}{m['peak_cpu_pct']:8.0f}")
    queues = ", ".join(f"{q} {v['peak']:.0f} ({v['mean']:.1f})" for q, v in run["queues"].items())
    lines.append(f"  ready messages in queue, peak (mean): {queues}")
    return lines + probes(run) + consumers(run)


def probes(run: dict[str, Any]) -> list[str]:
    """Event-loop lag of each service and the broker's confirm time, sampled during the run."""
    found = run.get("probes") or {}
    lines = [f"  {'probes, ms':42}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>8}"]
    rows = [(f"event loop: {n} GET /healthz", s) for n, s in found.get("loop_lag_ms", {}).items()]
    rows += [(f"broker confirm: {n} queue", s) for n, s in found.get("broker_confirm_ms", {}).items()]
    for label, s in rows:
        figures = f"{_f(s.get('p50'), 1)}{_f(s.get('p95'), 1)}{_f(s.get('p99'), 1)}{_f(s.get('max'), 1, 8)}"
        lines.append(f"    {label:40}{figures}")
    return lines if rows else []


def consumers(run: dict[str, Any]) -> list[str]:
    """What each service's consumers spent per message (from their /metrics)."""
    found = run.get("consumers") or {}
    if not found:
        return []
    lines = [f"  {'consumed (services /metrics)':42}{'messages':>9}{'mean ms':>9}{'busy share':>12}"]
    for process, data in found.items():
        for queue, h in data["handled"].items():
            where = f"{process} ← {queue}"
            lines.append(f"    {where:40}{h['messages']:9d}{h['mean_ms']:9.1f}{h['busy_share']:12.2f}")
    sent = [
        f"{process} → {dest} {p['mean_ms']:.1f} ms ×{p['messages']}"
        for process, data in found.items()
        for dest, p in data["published"].items()
    ]
    lines.append("  publish, mean wait for the confirm: " + "; ".join(sent))
    return lines


def sockets(s: dict[str, Any]) -> list[str]:
    return [
        "",
        f"D. IDLE READERS on one gateway: {s['connected']}/{s['sockets']} sockets connected in "
        f"{s['seconds_to_connect']:.1f} s (gateway open-files limit {s['gateway_nofile']})",
        f"  gateway RSS {s['rss_before_mib']:.1f} MiB → {s['rss_after_mib']:.1f} MiB: "
        f"{s['per_reader_kib']:.1f} KiB per connected reader (compression: {s['compression']})",
    ]


def _results_ms(run: dict[str, Any]) -> float:
    handled = (run.get("consumers") or {}).get("gateway", {}).get("handled", {})
    return float(handled.get("gateway.results", {}).get("mean_ms", math.nan))


def scaling(runs: list[dict[str, Any]]) -> list[str]:
    first = runs[0]
    spec = first["spec"]
    lines = [
        "",
        f"E. SCALING: {first['readers']} readers × {first['pages']} pages; per process: llm concurrency "
        f"{spec['llm_concurrency']}, image concurrency {spec['image_concurrency']}",
        f"  {'workers':>8}{'pages/s':>9}{'speedup':>9}{'effic.':>8}{'complete':>10}{'delta':>8}{'result':>8}"
        f"{'machine':>9}{'others':>8}   busiest processes, % of one core",
        f"  {'':8}{'':9}{'':9}{'':8}{'p50 s':>10}{'p50 ms':>8}{'ms':>8}{'%':>9}{'%':>8}",
        RULE,
    ]
    for run, row in zip(runs, scaling_table(runs), strict=True):
        complete = (run["latency_s"].get("pages 1+") or {}).get("complete", {})
        top = sorted(run["processes"].items(), key=lambda kv: -kv[1]["cpu_pct"])[:3]
        busiest = ", ".join(f"{n} {u['cpu_pct']:.0f}" for n, u in top)
        m = run["machine"]
        lines.append(
            f"  {row['workers']:8d}{row['pages_per_s']:9.2f}{row['speedup']:9.2f}{row['efficiency']:8.2f}"
            f"{_f(complete.get('p50'), 2, 10)}{_f(run['delta_lag_ms'].get('p50'), 0, 8)}"
            f"{_f(_results_ms(run), 0, 8)}{m['cpu_pct']:9.0f}{m.get('others_pct', 0):8.0f}   {busiest}"
        )
    lines.append(
        "  delta: text delta receipt − ts; result: the gateway's time per worker result (its /metrics); "
        "machine: all cores; others: other work, % of one core"
    )
    return lines


def render(results: dict[str, Any]) -> str:
    lines = header(results) + targets(results)
    if run := results.get("overhead"):
        lines += latency(run)
        if base := results.get("baseline"):
            lines += baseline(base, results["options"]["latency"]["image_seconds"])
        lines += processes(
            run, "C. PROCESSES during the latency run (CPU % of one core; machine % of all cores)"
        )
    lines += stores_and_gateways(results)
    if s := results.get("sockets"):
        lines += sockets(s)
    if found := results.get("profiles"):
        lines += profiles.render(found)
    if runs := results.get("scaling"):
        lines += scaling(runs)
    if found := results.get("capacity"):
        lines += capacity(found)
    return "\n".join(lines)


def stores_and_gateways(results: dict[str, Any]) -> list[str]:
    """The latency run on each store and the multi-gateway run, side by side, and each
    gateway's live traffic next to its readers' share."""
    runs = {
        f"{r['spec'].get('store', 'sqlite')}, {r['spec'].get('gateways', 1)} gateway(s)": r
        for key, r in results.items()
        if key == "overhead" or key.startswith("overhead_") or key == "gateways"
    }
    if len(runs) < 2 and "gateways" not in results:
        return []
    lines = ["", "D. STORES AND GATEWAYS (overhead ms over the floor; complete / floor)"]
    lines.append(f"  {'run':26}{'delta p50':>10}{'p99':>8}{'durable p99':>12}{'complete':>10}{'pages/s':>9}")
    for label, r in runs.items():
        ratio = r.get("complete_over_floor", {}).get("all pages", {})
        delta, durable = r["delta_lag_ms"], r["event_lag_ms"]
        lines.append(
            f"  {label:26}{_f(delta.get('p50'), 1, 10)}{_f(delta.get('p99'), 1, 8)}"
            f"{_f(durable.get('p99'), 1, 12)}{_f(ratio.get('p50'), 2, 10)}{_f(r['pages_per_s'], 2, 9)}"
        )
    for label, r in runs.items():
        for name, g in r.get("gateways", {}).items():
            lines.append(
                f"    {label} {name}: {int(g['readers'])} readers, {int(g['live_received'])} live frames "
                f"received ({_pct(g['live_share'])}% of all; its readers got "
                f"{_pct(g['reader_share'])}% of the frames), {g['cpu_ms_per_page']:.0f} ms CPU per page"
            )
            hop = g.get("to_gateway_ms") or {}
            if hop.get("delta"):
                delta, durable = _p50_p99(hop["delta"]), _p50_p99(hop.get("event") or {})
                reached = f"text delta {delta}, durable {durable}"
                lines.append(f"      frames reached it (part of the overhead above): {reached}")
    return lines


def _p50_p99(q: dict[str, float]) -> str:
    return f"p50 {_f(q.get('p50'), 1, 0)} / p99 {_f(q.get('p99'), 1, 0)} ms"


def _row(label: str, text: str) -> str:
    return f"    {label:26}{text}"


def _cpu(run: dict[str, Any]) -> str:
    procs = sorted(run.get("processes", {}).items(), key=lambda kv: -kv[1]["cpu_pct"])
    parts = [f"{name} {use['cpu_pct']:.0f} (peak {use['peak_cpu_pct']:.0f})" for name, use in procs[:4]]
    m = run.get("machine", {})
    return f"{', '.join(parts)}; machine {m.get('cpu_pct', 0):.0f}% of all cores"


def _capacity_probes(run: dict[str, Any]) -> list[str]:
    found = run.get("probes") or {}
    lines = []
    for name, s in found.get("loop_lag_ms", {}).items():
        figures = ", ".join(f"{q} {_f(s.get(q), 1, 0)}" for q in ("p50", "p95", "p99", "max"))
        lines.append(_row("event loop, ms", f"{name} GET /healthz: {figures}"))
    confirm = (found.get("broker_confirm_ms") or {}).get("quorum") or {}
    if confirm:
        figures = ", ".join(f"{q} {_f(confirm.get(q), 1, 0)}" for q in ("p50", "p99"))
        lines.append(_row("broker confirm, ms", f"quorum queue: {figures}"))
    return lines


def _timeline(values: list[int]) -> str:
    return " ".join(str(v) for v in values) if values else "–"


def _pct(value: Any, digits: int = 1) -> str:
    return _f(100 * value if isinstance(value, int | float) else math.nan, digits, 0)


def _connection(broker: dict[str, Any]) -> str:
    before, after = broker.get("before") or {}, broker.get("after") or {}
    if broker["kept"] is None:
        return f"not checked ({broker['why']})"
    if broker["kept"]:
        return (
            f"the same connection before and after (heartbeat {after.get('heartbeat_s')} s; "
            f"frames received {before.get('recv_cnt')} → {after.get('recv_cnt')})"
        )
    if before and after:
        later = (after["connected_at"] - before["connected_at"]) / 1000
        return (
            f"LOST: {before['pid']} was closed; the worker connected again as {after['pid']}, "
            f"{later:.1f} s after the first one opened"
        )
    return f"LOST: no connection named {broker['name']} after the run ({broker['why']})"


def capacity_images(run: dict[str, Any]) -> list[str]:
    broker, n = run["broker"], run["tasks"]
    missed = broker.get("missed_heartbeats")
    closes = (
        "log not readable"
        if missed is None
        else f"{missed['ours']} of ours ({missed['all']} in all) in {broker['log']} during the run"
    )
    return [
        f"  image_worker: IMAGE_CONCURRENCY {run['concurrency']}, {n} pictures asked at once, "
        f"{run['image_seconds']:.1f} s each at the fake; AMQP heartbeat asked "
        f"{broker['heartbeat_asked_s']} s",
        _row(
            "jimeng calls in flight",
            f"peak {run['peak_in_flight']}; the first {_f(run['first_call_s'], 2, 0)} s and all {n} "
            f"{_f(run['all_in_flight_s'], 2, 0)} s after publishing began "
            f"(publishing took {_f(run['publish_s'], 2, 0)} s)",
        ),
        _row(
            "",
            f"time-weighted mean {_f(run['mean_in_flight'], 1, 0)} from the first call until the first "
            f"picture came back ({_f(run['mean_window_s'], 1, 0)} s)",
        ),
        _row("in flight, each second", _timeline(run["timeline"])),
        _row(
            "results",
            f"{run['pictures']} pictures, {run['failed']} failed, the last {_f(run['wall_s'], 1, 0)} s after "
            f"publishing; jimeng calls {run['jimeng_calls']} ({run['calls_beyond_tasks']} beyond one per "
            f"task); duplicate results {run['duplicates']}",
        ),
        _row("broker connection", _connection(broker)),
        _row("missed-heartbeat closes", closes),
        *_capacity_probes(run),
        _row("CPU, % of one core", _cpu(run)),
    ]


def capacity_llm(run: dict[str, Any]) -> list[str]:
    k = run["concurrency"]
    return [
        f"  llm_worker: LLM_CONCURRENCY {k}, MOONSHOT_CONCURRENCY {k}, no RPM limit; "
        f"{run['tasks']} first pages queued at once",
        _row(
            "chat streams in flight",
            f"peak {run['peak_in_flight']}; time-weighted mean {_f(run['mean_in_flight'], 2, 0)} of {k} "
            f"({_pct(run['busy_share'])}%) from the first stream's start to the last one's "
            f"({_f(run['window_s'], 1, 0)} s, pages waiting throughout)",
        ),
        _row("", f"all {k} busy in {_pct(run['all_busy_polls_share'], 0)}% of the polls (every 0.1 s) then"),
        _row("in flight, each second", _timeline(run["timeline"])),
        _row(
            "pages",
            f"{run['pages']} written, {run['failed']} failed, the last {_f(run['wall_s'], 1, 0)} s after "
            f"publishing: {_f(run['pages_per_s'], 2, 0)} pages/s; {k} streams of "
            f"{_f(run['mean_stream_s'], 2, 0)} s back to back: {_f(run['ideal_pages_per_s'], 2, 0)}",
        ),
        _row(
            "",
            f"streams {run['streams']} ({run['streams_beyond_tasks']} beyond one per page); "
            f"duplicate results {run['duplicates']}",
        ),
        *_capacity_probes(run),
        _row("CPU, % of one core", _cpu(run)),
    ]


def capacity(found: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "F. CAPACITY: one worker process of each kind, its tasks published straight to the broker "
        "(no gateway);",
        "   in flight as the fakes count it (time-weighted means exact, from their integral of the count)",
        RULE,
    ]
    if run := found.get("images"):
        lines += capacity_images(run)
    if run := found.get("llm"):
        lines += capacity_llm(run)
    return lines
