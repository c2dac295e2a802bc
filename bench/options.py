"""What a benchmark run is asked to do: sizes, latencies and limits, with the defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class Latency:
    """The fakes' upstream latencies: Moonshot waits `ttft`, then sends `tps` tokens a second;
    jimeng takes `image_seconds` per picture."""

    ttft: float = 0.5
    tps: float = 40.0
    image_seconds: float = 3.0


@dataclass(frozen=True)
class Options:
    readers: int = 200  # the latency / overhead run
    pages: int = 3
    workers: tuple[int, ...] = (1, 2, 4)  # processes of each kind, one scaling run each
    scale_readers: int = 50
    overhead_workers: int = 2  # processes of each kind in the overhead run
    # Per-process concurrency in the scaling runs (the services' defaults).
    llm_concurrency: int = 8
    image_concurrency: int = 16
    sockets: int = 2000
    baseline_stories: int = 10
    # The capacity runs: one image_worker with this many slow jimeng calls at once (each
    # taking capacity_image_seconds), and one llm_worker with this LLM_CONCURRENCY.
    capacity_images: int = 100
    capacity_image_seconds: float = 20.0
    capacity_llm: int = 8
    latency: Latency = field(default_factory=Latency)
    # The latency run's readers arrive over `ramp` seconds and read each page for
    # `read_seconds` before choosing: the pace of a child hearing a picture-book page
    # read aloud. The scaling runs read nothing (0 s) and arrive over 3 s: they measure
    # how many pages a second the machine can make, not what a reader waits.
    ramp: float = 30.0
    read_seconds: float = 30.0
    compression: str = "browser"  # what the reader sockets offer: browser | none
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    store: str = "sqlite"  # the story store of the sockets, scaling and capacity runs
    # The latency run, once on each of these stores (the first one's is `overhead`).
    stores: tuple[str, ...] = ("sqlite", "postgres")
    # Gateway processes of the multi-gateway run (PostgreSQL; readers spread across them).
    gateways: int = 2
    postgres_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    out_dir: str = "bench-results"
    phases: tuple[str, ...] = ("overhead", "baseline", "gateways", "sockets", "scaling", "capacity")
    keep_logs: bool = False
    profile: bool = False
    run_timeout: float = 600.0  # seconds, per run of readers
    # Before each run, wait up to this long for the machine to be nearly idle (others may
    # be running tests on it); what it was is recorded with the run.
    quiet_wait: float = 60.0

    def as_dict(self) -> dict[str, Any]:
        """Everything, with the passwords in the URLs masked (this goes into the results file)."""
        out = asdict(self)
        for key in ("rabbitmq_url", "postgres_url"):
            out[key] = masked(out[key])
        return out


def masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def quick(base: Options) -> Options:
    """A small run that checks the machinery in well under a minute of load."""
    return Options(
        readers=20,
        pages=2,
        workers=(1, 2),
        scale_readers=10,
        overhead_workers=1,
        llm_concurrency=base.llm_concurrency,
        image_concurrency=base.image_concurrency,
        sockets=200,
        baseline_stories=3,
        capacity_images=20,
        capacity_image_seconds=5.0,
        capacity_llm=base.capacity_llm,
        latency=base.latency,
        ramp=1.0,
        read_seconds=5.0,
        compression=base.compression,
        rabbitmq_url=base.rabbitmq_url,
        store=base.store,
        stores=base.stores,
        gateways=base.gateways,
        postgres_url=base.postgres_url,
        out_dir=base.out_dir,
        phases=base.phases,
        keep_logs=base.keep_logs,
        profile=base.profile,
        run_timeout=base.run_timeout,
        quiet_wait=base.quiet_wait,
    )
