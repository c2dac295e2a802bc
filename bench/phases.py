"""The measurements of `make bench`, each on its own fresh stack."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import capacity as capacity_runs
from bench import profiles
from bench.baseline import BaselinePage, fake_pacing, run_baseline
from bench.floors import PageJob
from bench.options import Options
from bench.reader import Reading
from bench.runs import group_of, load_run
from bench.sockets import measure
from bench.stack import BenchStack, StackSpec, running
from bench.stats import summary

log = logging.getLogger("bench")

SCALE_RAMP = 3.0  # seconds over which a scaling run's readers arrive (they read nothing)


def overhead_spec(options: Options, profile_dir: Path | None = None) -> StackSpec:
    """Enough concurrency that no reader waits for a free slot: the pipeline is measured,
    not a queue in front of it (each reader has one page being written and at most two
    pictures being drawn)."""
    workers = options.overhead_workers
    return StackSpec(
        llm_workers=workers,
        image_workers=workers,
        llm_concurrency=math.ceil(options.readers / workers) + 8,
        image_concurrency=math.ceil(2 * options.readers / workers) + 8,
        pages=options.pages,
        latency=options.latency,
        profile_dir=profile_dir,
        store=options.store,
        postgres_url=options.postgres_url,
    )


async def overhead_and_baseline(
    options: Options, profile: Path | None, profile_dir: Path | None = None
) -> dict[str, Any]:
    """The latency run, then the sequential baseline on the same stack and the same pages.

    `profile`: cProfile of the bench itself; `profile_dir`: of the gateway and workers."""
    spec = overhead_spec(options, profile_dir)
    async with running(spec, rabbitmq_url=options.rabbitmq_url, keep_logs=options.keep_logs) as stack:
        log.info("overhead run: %d readers x %d pages on %s", options.readers, options.pages, stack.prefix)
        run, readings, jobs = await load_run(
            "overhead", stack, spec, options, readers=options.readers, profile=profile
        )
        out: dict[str, Any] = {"overhead": run.as_dict()}
        if "baseline" in options.phases:
            out["baseline"] = await baseline(stack, _sample(readings, jobs, options), run.page_rows, options)
    if profile_dir is not None:
        out["profiles"] = profiles.summarize(profile_dir)
    return out


async def gateways(options: Options) -> dict[str, Any]:
    """The latency run on PostgreSQL with several gateway processes, readers spread
    across them: each gateway's live traffic should be its own readers' share."""
    store = replace(options, store="postgres")
    spec = replace(overhead_spec(store), gateways=options.gateways)
    async with running(spec, rabbitmq_url=options.rabbitmq_url, keep_logs=options.keep_logs) as stack:
        log.info("multi-gateway run: %d gateways, %d readers", options.gateways, options.readers)
        name = f"gateways={options.gateways}"
        run, _, _ = await load_run(name, stack, spec, store, readers=options.readers)
    return run.as_dict()


async def baseline(
    stack: BenchStack, sample: list[list[PageJob]], rows: list[dict[str, Any]], options: Options
) -> dict[str, Any]:
    """The sample's pages done sequentially, and the fake Moonshot's own pacing, on this stack."""
    log.info("sequential baseline: %d stories x %d pages", len(sample), options.pages)
    moonshot = stack.stack.moonshot_url
    pages = await run_baseline(
        sample, moonshot_url=moonshot, jimeng_url=stack.stack.jimeng_url, media=stack.tmp / "baseline-media"
    )
    pacing = (
        await fake_pacing(sample[0][-1], moonshot_url=moonshot, latency=options.latency) if sample else {}
    )
    return compare(pages, rows, pacing)


def _sample(readings: list[Reading], jobs: dict[str, list[PageJob]], options: Options) -> list[list[PageJob]]:
    complete = [
        jobs[r.story_id]
        for r in readings
        if r.error is None and r.done(options.pages) and len(jobs.get(r.story_id, [])) == options.pages
    ]
    return complete[: options.baseline_stories]


def compare(
    pages: list[BaselinePage], rows: list[dict[str, Any]], pacing: dict[str, float]
) -> dict[str, Any]:
    """The baseline's page times, and ours (and the floor's) over theirs, page by page."""
    by_page = {(r["story_id"], r["page"]): r for r in rows}
    ratios: dict[str, list[float]] = {}
    floors: dict[str, list[float]] = {}
    totals: dict[str, list[float]] = {}
    for page in pages:
        group = group_of(page.page)
        totals.setdefault(group, []).append(page.total_s)
        row = by_page.get((page.story_id, page.page))
        if row is None or row["measured"]["complete"] is None:
            continue
        ratios.setdefault(group, []).append(row["measured"]["complete"] / page.total_s)
        if row["floor"] is not None:
            floors.setdefault(group, []).append(row["floor"]["complete"] / page.total_s)
    ratios["all pages"] = [x for v in ratios.values() for x in v]
    floors["all pages"] = [x for v in floors.values() for x in v]
    return {
        "pages": [asdict(p) for p in pages],
        "total_s": {g: summary(v) for g, v in totals.items()},
        "llm_s": summary([p.llm_s for p in pages if p.page > 0]),
        "image_s": summary([p.image_s for p in pages]),
        "download_s": summary([p.download_s for p in pages]),
        "ours_over_baseline": {g: summary(v) for g, v in ratios.items()},
        "floor_over_baseline": {g: summary(v) for g, v in floors.items()},
        "fake_pacing": pacing,
    }


async def socket_memory(options: Options) -> dict[str, Any]:
    spec = StackSpec(
        with_workers=False,
        pages=options.pages,
        latency=options.latency,
        store=options.store,
        postgres_url=options.postgres_url,
    )
    async with running(spec, rabbitmq_url=options.rabbitmq_url, keep_logs=options.keep_logs) as stack:
        pid = stack.pids()["gateway"]
        log.info("idle sockets: %d readers on one gateway (pid %d)", options.sockets, pid)
        result = await measure(
            stack.gateway_url, pid, sockets=options.sockets, compression=options.compression
        )
    return result.as_dict()


async def scaling(options: Options) -> list[dict[str, Any]]:
    runs = []
    for workers in options.workers:
        spec = StackSpec(
            llm_workers=workers,
            image_workers=workers,
            llm_concurrency=options.llm_concurrency,
            image_concurrency=options.image_concurrency,
            pages=options.pages,
            latency=options.latency,
            store=options.store,
            postgres_url=options.postgres_url,
        )
        async with running(spec, rabbitmq_url=options.rabbitmq_url, keep_logs=options.keep_logs) as stack:
            log.info("scaling run: %d worker(s) of each kind, %d readers", workers, options.scale_readers)
            run, _, _ = await load_run(
                f"workers={workers}",
                stack,
                spec,
                options,
                readers=options.scale_readers,
                read_seconds=0.0,
                ramp=SCALE_RAMP,
            )
        runs.append(run.as_dict())
    return runs


async def capacity(options: Options) -> dict[str, Any]:
    """One image_worker holding many slow jimeng calls, then one llm_worker kept busy
    by a backlog; each on its own stack without a gateway (see bench.capacity)."""
    return {
        "images": await capacity_runs.image_capacity(options),
        "llm": await capacity_runs.llm_capacity(options),
    }
