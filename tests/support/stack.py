"""The whole system as real processes for end-to-end and browser tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.devstack.procs import Stack, StackConfig, free_port
from tests.support.broker import delete_topology
from tests.support.infra import unique

ADMIN_TOKEN = "test-admin-token-0042"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@contextmanager
def running_stack(amqp_url: str, tmp: Path, *, name: str, **overrides: object) -> Iterator[Stack]:
    prefix = unique(f"t{name}-")
    port = free_port()
    config = StackConfig(
        rabbitmq_url=amqp_url,
        prefix=prefix,
        gateway_port=port,
        database_url=f"sqlite+aiosqlite:///{tmp / 'stories.db'}",
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
