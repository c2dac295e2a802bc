"""The whole system as real processes for end-to-end and browser tests."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from services.devstack.procs import Stack, StackConfig, free_port
from tests.support.broker import delete_topology
from tests.support.infra import create_database, drop_database, postgres_admin_url, unique

T = TypeVar("T")

ADMIN_TOKEN = "test-admin-token-0042"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _in_thread(job: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from sync code, even inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, job).result()


@contextmanager
def stack_database(tmp: Path) -> Iterator[str]:
    """The stack's store: a SQLite file, or with TEST_STACK_STORE=postgres a fresh
    database on TEST_POSTGRES_URL's server, dropped afterwards."""
    store = os.environ.get("TEST_STACK_STORE", "sqlite")
    if store == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'stories.db'}"
        return
    if store != "postgres":
        raise ValueError(f"TEST_STACK_STORE={store!r}: use sqlite (the default) or postgres")
    with postgres_admin_url() as admin:
        url = _in_thread(create_database(admin))
        try:
            yield url
        finally:
            _in_thread(drop_database(url))


@contextmanager
def running_stack(amqp_url: str, tmp: Path, *, name: str, **overrides: object) -> Iterator[Stack]:
    if "database_url" in overrides:
        with _running_stack(amqp_url, tmp, name=name, **overrides) as stack:  # type: ignore[arg-type]
            yield stack
        return
    with (
        stack_database(tmp) as database_url,
        _running_stack(amqp_url, tmp, name=name, database_url=database_url, **overrides) as stack,
    ):
        yield stack


@contextmanager
def _running_stack(
    amqp_url: str, tmp: Path, *, name: str, database_url: str, **overrides: object
) -> Iterator[Stack]:
    prefix = unique(f"t{name}-")
    port = free_port()
    config = StackConfig(
        rabbitmq_url=amqp_url,
        prefix=prefix,
        gateway_port=port,
        database_url=database_url,
        media_dir=tmp / "media",
        log_dir=ARTIFACTS / "logs" / name,
        story_pages=4,
        moonshot_port=free_port(),
        llm_ops_port=free_port(),
        image_ops_port=free_port(),
        jimeng_port=free_port(),
        ark_port=free_port(),
        moonshot_ttft=0.2,
        moonshot_tps=80.0,
        jimeng_seconds=1.5,
        jimeng_url_ttl=4.0,
        # The real server's slow failures (15 s, 30 s) take 2.25 s and 4.5 s: still well
        # apart from its instant validation errors (image_worker.jimeng.INSTANT).
        jimeng_time_scale=0.15,
        ark_seconds=1.5,
        ark_url_ttl=4.0,
        gateways=2,
        # Tests start many stories from one address; the limit has its own test.
        extra_env={"CREATE_PER_MINUTE": "1000", "ADMIN_TOKEN": ADMIN_TOKEN},
    )
    for key, value in overrides.items():
        if key == "extra_env":
            config.extra_env.update(value)  # type: ignore[call-overload]
        else:
            setattr(config, key, value)
    stack = Stack(config)
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()
        # In its own thread: the caller may be inside a running event loop.
        cleanup = threading.Thread(target=asyncio.run, args=(delete_topology(amqp_url, prefix),))
        cleanup.start()
        cleanup.join()


def media_objects(metrics: str, op: str) -> int:
    """Requests to the media store one service counted (storybook_media_objects_total)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("storybook_media_objects_total{") and f'op="{op}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
