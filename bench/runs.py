"""One load run: a fresh stack, N readers, and everything measured around them."""

from __future__ import annotations

import contextlib
import cProfile
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import metrics
from bench.floors import PageJob, floor_of, jobs_of
from bench.options import Options
from bench.probes import Probes
from bench.procstat import Meter, find_pid, server_pid, wait_quiet
from bench.reader import Reading, play_all
from bench.stack import BenchStack, DepthWatch, StackSpec
from bench.stages import aggregate, page_stages
from bench.stats import summary

MARKS = ("first_delta", "text_done", "image_done", "complete")


def group_of(page: int) -> str:
    return "page 0" if page == 0 else "pages 1+"


@dataclass
class LoadRun:
    name: str
    readers: int
    pages: int
    spec: dict[str, Any]
    read_seconds: float = 0.0  # how long each reader read a page before choosing
    wall_s: float = 0.0
    pages_complete: int = 0
    pages_per_s: float = 0.0
    failed_readers: int = 0
    failures: list[str] = field(default_factory=list)
    create_retries: int = 0
    # group ("page 0" / "pages 1+") -> mark -> summary, seconds
    latency_s: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    floor_s: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    over_floor_ms: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    complete_over_floor: dict[str, dict[str, float]] = field(default_factory=dict)
    floor_text_mismatches: int = 0
    delta_lag_ms: dict[str, float] = field(default_factory=dict)
    event_lag_ms: dict[str, float] = field(default_factory=dict)
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    machine: dict[str, float] = field(default_factory=dict)
    queues: dict[str, dict[str, float]] = field(default_factory=dict)
    images_failed: int = 0
    # Calls the fakes counted during the run, and what the floor model expects.
    upstream_calls: dict[str, int] = field(default_factory=dict)
    page_rows: list[dict[str, Any]] = field(default_factory=list)
    # process -> the services' own /metrics: per queue handled and per destination published
    consumers: dict[str, Any] = field(default_factory=dict)
    # event-loop lag of each service (GET /healthz) and the broker's confirm time, ms
    probes: dict[str, Any] = field(default_factory=dict)
    # group -> stretch between stored moments -> measured / floor / over summaries (ms)
    stages: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)
    # gateway process -> its readers, the live frames it received, its CPU per page
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def meter_pids(stack: BenchStack) -> dict[str, int]:
    pids = stack.pids()
    rabbit = find_pid("beam.smp")
    if rabbit is not None:
        pids["rabbitmq (shared)"] = rabbit
    pids["bench (readers)"] = os.getpid()
    if stack.stack.config.database_url.startswith("postgresql"):
        postgres = server_pid("postgres")
        if postgres is not None:
            pids[POSTGRES] = postgres
    return pids


# The PostgreSQL server with its backends: the store's own CPU, not "other work".
POSTGRES = "postgresql (shared)"


@dataclass
class Instruments:
    """What watches a run: CPU and memory of each process, queue depths, the probes."""

    meter: Meter
    depths: DepthWatch
    probes: Probes

    @classmethod
    def of(cls, stack: BenchStack) -> Instruments:
        services = {"gateway": stack.gateway_url, **stack.stack.ops_urls}
        return cls(
            Meter(meter_pids(stack), trees=frozenset({POSTGRES})),
            DepthWatch(stack.rabbitmq_url, stack.prefix),
            Probes(services, stack.rabbitmq_url, stack.prefix),
        )

    def start(self) -> None:
        self.meter.start()
        self.depths.start()
        self.probes.start()

    async def stop(self, run: LoadRun) -> None:
        uses, run.machine = await self.meter.stop()
        run.processes = {name: asdict(use) for name, use in uses.items()}
        run.queues = await self.depths.stop()
        run.probes = await self.probes.stop()


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """cProfile this process meanwhile, into `path` (nothing when None)."""
    if path is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


async def load_run(
    name: str,
    stack: BenchStack,
    spec: StackSpec,
    options: Options,
    *,
    readers: int,
    profile: Path | None = None,
    read_seconds: float | None = None,
    ramp: float | None = None,
) -> tuple[LoadRun, list[Reading], dict[str, list[PageJob]]]:
    """Drive `readers` readers through `options.pages` pages on a running stack.

    `read_seconds`, `ramp`: how long a reader reads a page before choosing, and over how
    long the readers arrive (default: the options')."""
    pace = options.read_seconds if read_seconds is None else read_seconds
    run = LoadRun(name=name, readers=readers, pages=options.pages, spec=asdict(spec), read_seconds=pace)
    busy_before = await wait_quiet(options.quiet_wait)
    gateways = dict(sorted(stack.gateway_urls().items()))
    instruments = Instruments.of(stack)
    instruments.start()
    try:
        with profiled(profile):
            readings, run.wall_s = await play_all(
                list(gateways.values()),
                readers=readers,
                pages=options.pages,
                ramp=options.ramp if ramp is None else ramp,
                compression=options.compression,
                limit=options.run_timeout,
                read_seconds=pace,
            )
    finally:
        await instruments.stop(run)
    run.machine["busy_before_pct"] = round(busy_before, 1)
    urls = {"gateway": stack.gateway_url, **stack.stack.ops_urls}
    run.consumers = await metrics.scrape(urls, run.wall_s)
    jobs = await summarize(run, readings, stack, options)
    run.upstream_calls = await upstream_calls(stack, jobs)
    run.gateways = await per_gateway(run, readings, gateways)
    return run, readings, jobs


async def per_gateway(
    run: LoadRun, readings: list[Reading], gateways: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Each gateway's share of the live traffic next to its readers' share of the frames
    they received: with live traffic following readers the two agree."""
    out: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        for at, (name, url) in enumerate(gateways.items()):
            found = metrics.parse((await http.get(f"{url}/metrics")).text)
            mine = [r for r in readings if r.gateway == at]
            pages = sum(1 for r in mine for t in r.pages.values() if t.complete is not None)
            cpu_s = run.processes.get(name, {}).get("cpu_s", 0.0)
            out[name] = {
                "readers": len(mine),
                "reader_frames": sum(r.frames for r in mine),
                "live_received": sum(v for n, _, v in found if n == "storybook_live_frames_received_total"),
                # From the frame's making to this gateway (the broker's hop), ms.
                "to_gateway_ms": {
                    kind: {
                        k: round(1000 * v, 1)
                        for k, v in metrics.histogram_quantiles(
                            found, "live_frame_delay_seconds", {"kind": kind}, (0.5, 0.99)
                        ).items()
                    }
                    for kind in ("delta", "event")
                },
                "pages": pages,
                "cpu_ms_per_page": round(1000 * cpu_s / pages, 1) if pages else 0.0,
            }
    live, frames = (sum(g[k] for g in out.values()) or 1.0 for k in ("live_received", "reader_frames"))
    for g in out.values():
        g["live_share"] = round(g["live_received"] / live, 4)
        g["reader_share"] = round(g["reader_frames"] / frames, 4)
    return out


async def upstream_calls(stack: BenchStack, jobs: dict[str, list[PageJob]]) -> dict[str, int]:
    """What the fakes served, next to the calls the floor model counts (they should agree)."""
    base = stack.stack
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
        moonshot = (await http.get(base.moonshot_url.removesuffix("/v1") + "/_fake/stats")).json()
        jimeng = (await http.get(base.jimeng_url + "/_fake/stats")).json()
    pages = [job for story in jobs.values() for job in story]
    pictures = jimeng.get("requests", {})
    return {
        "moonshot_chat": int(moonshot.get("requests", 0)),
        "moonshot_chat_modelled": sum(
            1 + (job.judge_messages is not None) + (job.outline_messages is not None) for job in pages
        ),
        "jimeng_pictures": int(pictures.get("generations", 0)) + int(pictures.get("compositions", 0)),
        "jimeng_pictures_modelled": sum(1 + (job.sheet_prompt is not None) for job in pages),
    }


async def summarize(
    run: LoadRun, readings: list[Reading], stack: BenchStack, options: Options
) -> dict[str, list[PageJob]]:
    failed = [r for r in readings if r.error is not None or not r.done(options.pages)]
    run.failed_readers = len(failed)
    run.failures = sorted({r.error or "incomplete" for r in failed})[:5]
    run.create_retries = sum(r.create_retries for r in readings)
    run.pages_complete = sum(1 for r in readings for t in r.pages.values() if t.complete is not None)
    run.pages_per_s = round(run.pages_complete / run.wall_s, 3) if run.wall_s else 0.0
    run.images_failed = sum(1 for r in readings for t in r.pages.values() if t.image_failed)
    run.delta_lag_ms = summary([x for r in readings for x in r.delta_lag], 1000)
    run.event_lag_ms = summary([x for r in readings for x in r.event_lag], 1000)
    jobs = await _jobs(stack, readings, options.pages)
    run.page_rows = page_rows(readings, jobs, options)
    _latencies(run, run.page_rows)
    _stages(run, run.page_rows)
    return jobs


async def _jobs(stack: BenchStack, readings: list[Reading], pages: int) -> dict[str, list[PageJob]]:
    found = await stack.read_stories([r.story_id for r in readings if r.story_id])
    return {story_id: jobs_of(story, rows, pages) for story_id, (story, rows) in found.items()}


def page_rows(
    readings: list[Reading], jobs: dict[str, list[PageJob]], options: Options
) -> list[dict[str, Any]]:
    """Every page a reader saw: its marks (seconds from its start) and its floor."""
    rows = []
    for reading in readings:
        by_page = {job.page: job for job in jobs.get(reading.story_id, [])}
        for page, times in sorted(reading.pages.items()):
            job = by_page.get(page)
            floor = floor_of(job, options.latency).as_dict() if job is not None else None
            parts = page_stages(reading, page, times, floor, options.latency) if floor else {}
            rows.append(
                {
                    "story_id": reading.story_id,
                    "page": page,
                    "measured": times.since_start(),
                    "floor": floor,
                    "stages": parts,
                }
            )
    return rows


def _stages(run: LoadRun, rows: list[dict[str, Any]]) -> None:
    for group in ("page 0", "pages 1+"):
        mine = [row["stages"] for row in rows if group_of(row["page"]) == group and row["stages"]]
        if mine:
            run.stages[group] = aggregate(mine)


def _latencies(run: LoadRun, rows: list[dict[str, Any]]) -> None:
    measured: dict[str, dict[str, list[float]]] = {}
    floors: dict[str, dict[str, list[float]]] = {}
    over: dict[str, dict[str, list[float]]] = {}
    ratio: dict[str, list[float]] = {}
    for row in rows:
        group, marks, floor = group_of(row["page"]), row["measured"], row["floor"]
        for mark in MARKS:
            if marks[mark] is not None:
                measured.setdefault(group, {}).setdefault(mark, []).append(marks[mark])
        if floor is None or marks["complete"] is None:
            continue
        run.floor_text_mismatches += 0 if floor["text_matches"] else 1
        for mark in MARKS:
            floors.setdefault(group, {}).setdefault(mark, []).append(floor[mark])
            if marks[mark] is not None:
                over.setdefault(group, {}).setdefault(mark, []).append(marks[mark] - floor[mark])
        ratio.setdefault(group, []).append(marks["complete"] / floor["complete"])
    run.latency_s = {g: {m: summary(v) for m, v in ms.items()} for g, ms in measured.items()}
    run.floor_s = {g: {m: summary(v) for m, v in ms.items()} for g, ms in floors.items()}
    run.over_floor_ms = {g: {m: summary(v, 1000) for m, v in ms.items()} for g, ms in over.items()}
    run.complete_over_floor = {g: summary(v) for g, v in ratio.items()}
    run.complete_over_floor["all pages"] = summary([x for v in ratio.values() for x in v])
