"""Command line of `python -m bench`: run the measurements, print the table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aio_pika
import uvloop

from bench import phases
from bench.options import Latency, Options, quick
from bench.procstat import CORES, raise_nofile
from bench.report import render
from bench.targets import check_all

PHASES = ("overhead", "baseline", "gateways", "sockets", "scaling", "capacity")


def _ints(value: str) -> tuple[int, ...]:
    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2,4, got {value!r}") from None
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError("every worker count must be at least 1")
    return items


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _phases(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in PHASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phase(s) {unknown}; known: {', '.join(PHASES)}")
    return items


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--readers", type=int, default=d.readers, help="readers in the latency run")
    p.add_argument("--pages", type=int, default=d.pages, help="pages each reader plays")
    p.add_argument(
        "--workers", type=_ints, default=d.workers, help="worker processes of each kind, per scaling run"
    )
    p.add_argument("--scale-readers", type=int, default=d.scale_readers, help="readers in each scaling run")
    p.add_argument(
        "--overhead-workers",
        type=int,
        default=d.overhead_workers,
        help="worker processes of each kind in the latency run",
    )
    p.add_argument(
        "--llm-concurrency", type=int, default=d.llm_concurrency, help="per llm_worker, scaling runs"
    )
    p.add_argument(
        "--image-concurrency", type=int, default=d.image_concurrency, help="per image_worker, scaling runs"
    )
    p.add_argument("--sockets", type=int, default=d.sockets, help="idle reader sockets on one gateway")
    p.add_argument("--baseline-stories", type=int, default=d.baseline_stories)
    p.add_argument(
        "--capacity-images",
        type=_positive,
        default=d.capacity_images,
        help="capacity run: IMAGE_CONCURRENCY of the one image_worker, and the pictures asked at once",
    )
    p.add_argument(
        "--capacity-image-seconds",
        type=float,
        default=d.capacity_image_seconds,
        help="capacity run: fake jimeng seconds a picture (slow, so the calls stay in flight)",
    )
    p.add_argument(
        "--capacity-llm",
        type=_positive,
        default=d.capacity_llm,
        help="capacity run: LLM_CONCURRENCY of the one llm_worker (3x as many pages are queued)",
    )
    p.add_argument("--ttft", type=float, default=d.latency.ttft, help="fake Moonshot: seconds to first token")
    p.add_argument("--tps", type=float, default=d.latency.tps, help="fake Moonshot: tokens per second")
    p.add_argument(
        "--image-seconds", type=float, default=d.latency.image_seconds, help="fake jimeng: per picture"
    )
    p.add_argument(
        "--ramp", type=float, default=d.ramp, help="seconds over which the latency run's readers arrive"
    )
    p.add_argument(
        "--read-seconds",
        type=float,
        default=d.read_seconds,
        help="seconds a reader of the latency run reads a page before choosing (0: at once)",
    )
    p.add_argument("--compression", choices=("browser", "none"), default=d.compression)
    p.add_argument("--phases", type=_phases, default=d.phases, help=f"subset of {','.join(PHASES)}")
    p.add_argument("--rabbitmq-url", default=os.environ.get("RABBITMQ_URL", d.rabbitmq_url))
    p.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default=None,
        help="one story store for every run (default: the latency run on both, the others on sqlite)",
    )
    p.add_argument(
        "--gateways", type=_positive, default=d.gateways, help="gateway processes of the multi-gateway run"
    )
    p.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", d.postgres_url),
        help="server for --store postgres (a database is created for each run and dropped)",
    )
    p.add_argument("--out", default=d.out_dir, help="directory of the JSON results")
    p.add_argument("--keep-logs", action="store_true", help="keep the services' logs (temp dir)")
    p.add_argument("--profile", action="store_true", help="cProfile the bench during the latency run")
    p.add_argument(
        "--profile-services",
        action="store_true",
        help="run the gateway and one worker of each kind under cProfile in the latency run (diagnostic)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=d.quiet_wait,
        help="seconds to wait, before each run, for the machine to be nearly idle",
    )
    p.add_argument("--quick", action="store_true", help="a small run of every phase (about 2 minutes)")
    p.add_argument("--render", metavar="JSON", help="print the table of an earlier run and exit")
    a = p.parse_args(argv)
    options = Options(
        readers=a.readers,
        pages=a.pages,
        workers=a.workers,
        scale_readers=a.scale_readers,
        overhead_workers=a.overhead_workers,
        llm_concurrency=a.llm_concurrency,
        image_concurrency=a.image_concurrency,
        sockets=a.sockets,
        baseline_stories=a.baseline_stories,
        capacity_images=a.capacity_images,
        capacity_image_seconds=a.capacity_image_seconds,
        capacity_llm=a.capacity_llm,
        latency=Latency(ttft=a.ttft, tps=a.tps, image_seconds=a.image_seconds),
        ramp=a.ramp,
        read_seconds=a.read_seconds,
        compression=a.compression,
        rabbitmq_url=a.rabbitmq_url,
        store=a.store or d.store,
        stores=(a.store,) if a.store else d.stores,
        gateways=a.gateways,
        postgres_url=a.postgres_url,
        out_dir=a.out,
        phases=a.phases,
        keep_logs=a.keep_logs,
        profile=a.profile,
        quiet_wait=a.wait_quiet,
    )
    return (quick(options) if a.quick else options), a


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


async def _rabbitmq_version(url: str) -> str:
    connection = await aio_pika.connect(url)
    async with connection:
        props = connection.transport.connection.server_properties  # type: ignore[union-attr]
        return str(props.get("version", "unknown"))


async def machine(url: str) -> dict[str, Any]:
    return {
        "nproc": CORES,
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "rabbitmq": await _rabbitmq_version(url),
        "nofile": raise_nofile(),
    }


async def run(options: Options, profile: Path | None, profile_dir: Path | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": options.as_dict(),
        "machine": await machine(options.rabbitmq_url),
    }
    if "overhead" in options.phases:
        for n, store in enumerate(options.stores):
            found = await phases.overhead_and_baseline(replace(options, store=store), profile, profile_dir)
            if n == 0:
                results.update(found)
            else:
                results[f"overhead_{store}"] = found["overhead"]
    if "gateways" in options.phases:
        results["gateways"] = await phases.gateways(options)
    if "sockets" in options.phases:
        results["sockets"] = await phases.socket_memory(options)
    if "scaling" in options.phases:
        results["scaling"] = await phases.scaling(options)
    if "capacity" in options.phases:
        results["capacity"] = await phases.capacity(options)
    results["targets"] = [v.as_dict() for v in check_all(results)]
    return results


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "openai", "aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options, args = parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stamp}.json"
    profile = out / f"{stamp}-bench.prof" if options.profile else None
    started = time.monotonic()
    profile_dir = out / f"{stamp}-profiles" if args.profile_services else None
    # The readers' loop is uvloop like the services': its receipt times are the measurement.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(run(options, profile, profile_dir))
    results["path"] = str(path)
    results["seconds"] = round(time.monotonic() - started, 1)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    print(render(results))
    print(f"\nresults: {path}" + (f"\nbench profile: {profile}" if profile else ""))
