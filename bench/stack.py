"""The services under test, as real processes on the shared local broker.

Each run gets its own RABBITMQ_PREFIX (`bench-<random>`), story store (a SQLite file,
or a fresh PostgreSQL database), media directory and free ports; at the end its
processes stop, every queue and exchange it declared is deleted from the broker, and a
PostgreSQL database it made is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from sqlalchemy import BindParameter, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.options import Latency
from services.common.amqp import delete_topology
from services.common.topology import Topology
from services.devstack.procs import Proc, Stack, StackConfig, free_port, wait_http

log = logging.getLogger("bench")


@dataclass(frozen=True)
class StackSpec:
    """One stack: how many workers of each kind and how much each takes on at once."""

    llm_workers: int = 1
    image_workers: int = 1
    llm_concurrency: int = 8
    image_concurrency: int = 16
    pages: int = 3
    latency: Latency = field(default_factory=Latency)
    with_workers: bool = True  # False: the gateway alone (the idle-socket measurement)
    # False: the fakes and workers alone (the capacity runs publish the tasks and read
    # the results queue themselves).
    gateway: bool = True
    # Service environment over the defaults below (e.g. a RABBITMQ_URL with a short heartbeat).
    env: dict[str, str] = field(default_factory=dict)
    # Run the gateway and the first worker of each kind under cProfile (a diagnostic run:
    # profiling slows them down), writing <name>.prof into this directory.
    profile_dir: Path | None = None
    # The story store: "sqlite" (a file, the default install) or "postgres" (a database
    # made for the run on the server at postgres_url).
    store: str = "sqlite"
    gateways: int = 1  # gateway processes, each on its own port (readers spread across them)
    postgres_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


StoryRows = tuple[Mapping[str, Any], list[Mapping[str, Any]]]
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
STORIES = text("SELECT * FROM stories WHERE id IN :ids").bindparams(_IDS)
PAGES = text('SELECT * FROM pages WHERE story_id IN :ids ORDER BY story_id, "index"').bindparams(_IDS)


@dataclass
class BenchStack:
    stack: Stack
    tmp: Path
    prefix: str
    rabbitmq_url: str

    @property
    def gateway_url(self) -> str:
        return self.stack.gateway_url

    def gateway_urls(self) -> dict[str, str]:
        """Each running gateway by its process name ("gateway", "gateway-1", ...)."""
        names = [n for n in self.stack.procs if n == "gateway" or n.startswith("gateway-")]
        return {n: self.stack.gateway_url_of(0 if n == "gateway" else int(n.split("-")[1])) for n in names}

    def pids(self) -> dict[str, int]:
        return {
            name: proc.popen.pid
            for name, proc in sorted(self.stack.procs.items())
            if proc.popen is not None and proc.alive
        }

    async def read_stories(self, story_ids: list[str]) -> dict[str, StoryRows]:
        """Each story's row and its page rows in page order, from the run's store."""
        engine = create_async_engine(self.stack.config.database_url)
        found: dict[str, StoryRows] = {}
        try:
            async with engine.connect() as conn:
                stories = await conn.execute(STORIES, {"ids": story_ids})
                pages = await conn.execute(PAGES, {"ids": story_ids})
                for story in stories.mappings():
                    found[story["id"]] = (dict(story), [])
                for page in pages.mappings():
                    found[page["story_id"]][1].append(dict(page))
        finally:
            await engine.dispose()
        return found


def _service_env(spec: StackSpec) -> dict[str, str]:
    # The fakes have no account budget: the pipeline, not an RPM limit, is measured.
    env = {
        "LLM_CONCURRENCY": str(spec.llm_concurrency),
        "MOONSHOT_CONCURRENCY": str(spec.llm_concurrency),
        "MOONSHOT_RPM": "0",
        "IMAGE_CONCURRENCY": str(spec.image_concurrency),
        # Every reader comes from 127.0.0.1 and they all start at once.
        "CREATE_PER_MINUTE": "1000000",
        "WS_PER_CLIENT": "1000000",
        "MAX_QUEUE_DEPTH": "1000000",
        "LOG_LEVEL": "INFO",
    }
    return env | spec.env


def _config(spec: StackSpec, tmp: Path, prefix: str, rabbitmq_url: str, database_url: str) -> StackConfig:
    return StackConfig(
        rabbitmq_url=rabbitmq_url,
        prefix=prefix,
        gateway_port=free_port(),
        database_url=database_url,
        media_dir=tmp / "media",
        log_dir=tmp / "logs",
        story_pages=max(2, spec.pages),
        moonshot_port=free_port(),
        jimeng_port=free_port(),
        llm_ops_port=free_port(),
        image_ops_port=free_port(),
        moonshot_ttft=spec.latency.ttft,
        moonshot_tps=spec.latency.tps,
        jimeng_seconds=spec.latency.image_seconds,
        extra_env=_service_env(spec),
    )


def _start(stack: Stack, spec: StackSpec) -> None:
    if spec.with_workers:
        stack.start_fakes()
    if spec.profile_dir is not None:
        _start_profiled(stack, spec.profile_dir, with_workers=spec.with_workers)
    elif spec.gateway:
        stack.start_gateway(0)
    if spec.gateway:
        for n in range(1, spec.gateways):
            stack.start_gateway(n)
    if spec.with_workers:
        first = 1 if spec.profile_dir is not None else 0
        for n in range(first, spec.llm_workers):
            stack.start_worker("llm_worker", n)
        for n in range(first, spec.image_workers):
            stack.start_worker("image_worker", n)


def _start_profiled(stack: Stack, out: Path, *, with_workers: bool) -> None:
    """The gateway and one worker of each kind, each under `python -m bench.profiled`."""
    out.mkdir(parents=True, exist_ok=True)
    env = stack.service_env()
    env.update(GATEWAY_PORT=str(stack.config.gateway_port), GATEWAY_HOST="127.0.0.1")
    gateway = _spawn_profiled(stack, "gateway", env, out)
    wait_http(f"{stack.gateway_url}/readyz", timeout=60, proc=gateway)
    if not with_workers:
        return
    for kind, variable in (("llm_worker", "LLM_OPS_PORT"), ("image_worker", "IMAGE_OPS_PORT")):
        port = free_port()
        env = stack.service_env()
        env.update({variable: str(port), "OPS_HOST": "127.0.0.1"})
        proc = _spawn_profiled(stack, kind, env, out)
        stack.ops_urls[kind] = f"http://127.0.0.1:{port}"
        wait_http(f"{stack.ops_urls[kind]}/healthz", timeout=60, proc=proc)


def _spawn_profiled(stack: Stack, name: str, env: dict[str, str], out: Path) -> Proc:
    log_dir = stack.config.log_dir
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    args = ["-m", "bench.profiled", str(out / f"{name}.prof"), f"services.{name}"]
    proc = Proc(name, args, env, log_dir / f"{name}.log" if log_dir else None).start()
    stack.procs[name] = proc
    return proc


@contextlib.asynccontextmanager
async def running(spec: StackSpec, *, rabbitmq_url: str, keep_logs: bool) -> AsyncIterator[BenchStack]:
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    async with store(spec, tmp, prefix) as database_url:
        stack = Stack(_config(spec, tmp, prefix, rabbitmq_url, database_url))
        failed = True
        try:
            await asyncio.to_thread(_start, stack, spec)
            yield BenchStack(stack, tmp, prefix, rabbitmq_url)
            failed = bool(stack.dead())
            if failed:
                log.error("processes died during the run: %s", ", ".join(stack.dead()))
        finally:
            await asyncio.to_thread(stack.stop_all)
            await delete_topology(rabbitmq_url, prefix)
            if failed or keep_logs:
                log.warning("logs of %s kept in %s", prefix, tmp / "logs")
            else:
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def store(spec: StackSpec, tmp: Path, prefix: str) -> AsyncIterator[str]:
    """The DATABASE_URL of the run: a SQLite file in its directory, or a PostgreSQL database
    created for it and dropped afterwards."""
    if spec.store == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'stories.db'}"
        return
    admin = make_url(spec.postgres_url)
    name = prefix.replace("-", "_")
    server = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass
class DepthWatch:
    """Depth of the work queues, sampled twice a second (passive declares)."""

    url: str
    prefix: str
    interval: float = 0.5
    peak: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[int]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        topo = Topology(self.prefix)
        names = {
            "llm.tasks": topo.llm_queue.name,
            "image.tasks": topo.image_queue.name,
            "gateway.results": topo.results_queue.name,
        }
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            while True:
                for short, name in names.items():
                    queue = await channel.declare_queue(name, passive=True)
                    depth = int(queue.declaration_result.message_count or 0)
                    self.peak[short] = max(self.peak.get(short, 0), depth)
                    self.samples.setdefault(short, []).append(depth)
                await asyncio.sleep(self.interval)

    async def stop(self) -> dict[str, dict[str, float]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        return {
            name: {"peak": self.peak.get(name, 0), "mean": round(sum(s) / len(s), 1) if s else 0.0}
            for name, s in self.samples.items()
        }
