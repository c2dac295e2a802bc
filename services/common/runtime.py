"""Process-wide runtime settings every service applies when it starts."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Protocol, TypeVar

import uvloop

from services.common.logs import setup_logging
from services.common.settings import ServiceSettings, load_settings

# CPython collects its youngest generation every 700 allocations by default. A worker
# streaming a page allocates a model object per token and a gateway a frame per reader,
# so collections ran hundreds of times a second and the longer ones showed as event-loop
# stalls: in the benchmark at 200 readers, text-delta p99 27.6 ms and max 150 ms with the
# defaults, 17.7 ms and 75 ms with these (docs/benchmarks.md).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect less often, and leave what was loaded at start out of every collection."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


class _Runnable(Protocol):
    async def run(self) -> None: ...


S = TypeVar("S", bound=ServiceSettings)


def run_worker(service: str, settings_type: type[S], create_app: Callable[[S], _Runnable]) -> None:
    """A worker's `python -m` entry: settings checked once, logging, GC tuned, then run."""
    settings = load_settings(settings_type, service=service)
    setup_logging(service, settings.log_level)
    tune_gc()
    # uvloop, as the gateway's uvicorn already uses: a worker's loop is mostly socket
    # callbacks (a chunk per token, a frame per delta), which it runs for a fraction of
    # the CPU of asyncio's own loop, so a busy worker's loop lags less.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(create_app(settings).run())
