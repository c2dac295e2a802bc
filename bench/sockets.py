"""Memory per connected reader: K idle reader sockets held open on one gateway.

The gateway runs alone (no workers, so nothing is written and the sockets stay idle
after the replay of each story's first event). K stories are created first, then the
gateway's resident memory is read before and after K sockets connect, one per story.
"""

from __future__ import annotations

import asyncio
import gc
import re
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.procstat import memory_kib, nofile_limit
from bench.reader import premise, socket_options

SETTLE = 3.0


@dataclass(frozen=True)
class SocketMemory:
    sockets: int
    connected: int
    gateway_nofile: int | None
    rss_before_mib: float
    rss_after_mib: float
    per_reader_kib: float
    compression: str
    seconds_to_connect: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _create(http: httpx.AsyncClient, n: int) -> str:
    r = await http.post("/api/stories", json={"premise": premise(n)})
    r.raise_for_status()
    body = r.json()
    return f"/ws/stories/{body['story_id']}?token={body['token']}&after=0"


async def _bounded(items: list[Any], fn: Any, width: int) -> list[Any]:
    gate = asyncio.Semaphore(width)

    async def one(item: Any) -> Any:
        async with gate:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _rss_kib(pid: int) -> int:
    await asyncio.sleep(SETTLE)
    return memory_kib(pid).get("VmRSS", 0)


async def _ws_gauge(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    found = re.search(r"^storybook_ws_connections\s+([0-9.e+]+)$", text, re.MULTILINE)
    return int(float(found.group(1))) if found else -1


async def measure(base_url: str, gateway_pid: int, *, sockets: int, compression: str) -> SocketMemory:
    ws_base = base_url.replace("http://", "ws://")
    options = socket_options(compression)
    held: list[ClientConnection] = []

    async def open_one(path: str) -> None:
        ws = await connect(ws_base + path, **options)
        held.append(ws)
        await asyncio.wait_for(ws.recv(), 30)  # the replayed page.started: the socket is live

    async with httpx.AsyncClient(base_url=base_url, timeout=60, trust_env=False) as http:
        paths = await _bounded(list(range(sockets)), lambda n: _create(http, n), 32)
        gc.collect()
        before = await _rss_kib(gateway_pid)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await _bounded(paths, open_one, 100)
            took = loop.time() - started
            after = await _rss_kib(gateway_pid)
            connected = await _ws_gauge(http)
        finally:
            await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    return SocketMemory(
        sockets=sockets,
        connected=connected,
        gateway_nofile=nofile_limit(gateway_pid),
        rss_before_mib=round(before / 1024, 1),
        rss_after_mib=round(after / 1024, 1),
        per_reader_kib=round((after - before) / max(sockets, 1), 1),
        compression=compression,
        seconds_to_connect=round(took, 2),
    )
