"""python -m bench.storecheck: the gateway's story store, alone, with a busy and an idle event loop.

The gateway applies every worker result in one store transaction. With SQLite, each
statement runs on an aiosqlite worker thread, and the transaction holds the file's
write lock (BEGIN IMMEDIATE) from its first statement to its commit. This measures how
many such writes a second one Store manages when the event loop is idle, and when it
is kept busy as the gateway's is under load (a task that computes for `busy` ms
between awaits, as serving sockets and text deltas does), at two GIL switch intervals
(CPython's default 5 ms, and 0.5 ms): if the rate collapses with a busy loop and
recovers with a shorter switch interval, each statement waits for the GIL, and every
other writer waits for the lock meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from services.common import contracts as c
from services.common.topology import Topology
from services.gateway.store.repo import Store

WRITES = 20


async def _hog(busy: float) -> None:
    """Keep the event loop busy: compute `busy` seconds, yield, again."""
    while True:
        until = time.perf_counter() + busy
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


async def writes_per_second(url: str, busy_ms: float) -> float:
    store = Store(url, topology=Topology("storecheck"))
    await store.create_schema()
    story_id, _, _ = await store.create_story(
        premise="storecheck", age=6, language="zh", style="watercolor", total_pages=3
    )
    hog = asyncio.create_task(_hog(busy_ms / 1000)) if busy_ms > 0 else None
    try:
        started = time.perf_counter()
        for _ in range(WRITES):
            await store.apply(c.UsageReport(story_id=story_id, llm_calls=1))
        return WRITES / (time.perf_counter() - started)
    finally:
        if hog is not None:
            hog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hog
        await store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storecheck", description=__doc__)
    parser.add_argument("--busy-ms", type=float, default=1.0, help="loop work between awaits, ms")
    args = parser.parse_args(argv)
    default = sys.getswitchinterval()
    for busy, interval in ((0.0, default), (args.busy_ms, default), (args.busy_ms, 0.0005)):
        sys.setswitchinterval(interval)
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'stories.db'}"
            rate = asyncio.run(writes_per_second(url, busy))
        print(
            f"event loop busy {busy:4.1f} ms between awaits, GIL switch interval {interval * 1000:3.1f} ms: "
            f"{rate:7.1f} result writes/s ({1000 / rate:6.1f} ms each, holding the write lock)"
        )
    sys.setswitchinterval(default)


if __name__ == "__main__":
    main()
