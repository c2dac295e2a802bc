"""A reader over the real HTTP API and WebSocket, timing every page it plays.

It starts a story, connects, and when a page's `page.text.done` arrives it reads the
page for `read_seconds` (0: not at all) and chooses choice 0, until it has `pages`
pages with their text and their picture. Reading time is the pace of a person: a
child hearing a picture-book page read aloud takes half a minute or so; with 0 every
reader asks for its next page the moment it can, which measures capacity, not latency. Times are taken the
moment a frame is received (before anything else is done with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

PREMISES = (
    "一只想去月亮上的小兔子",
    "小熊在森林里找蜂蜜",
    "小企鹅第一次看见大海",
    "一条想学飞的小龙",
    "小狐狸和会说话的雪人",
    "小猫咪在花园里迷路了",
    "小恐龙要去上幼儿园",
    "小松鼠的星星船",
)


def premise(n: int) -> str:
    return f"{PREMISES[n % len(PREMISES)]}（第{n + 1}个故事）"


def socket_options(compression: str) -> dict[str, Any]:
    """`browser`: offer permessage-deflate as Chrome does (the server picks 15-bit windows);
    `none`: no compression."""
    options: dict[str, Any] = {"proxy": None, "max_size": 1 << 20, "open_timeout": 60}
    if compression == "browser":
        options["extensions"] = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
        options["compression"] = None
    else:
        options["compression"] = None
    return options


@dataclass
class PageTimes:
    """time.monotonic() marks of one page, as the reader saw them."""

    page: int
    start: float  # POST /api/stories sent (page 0) or the choose frame sent (later pages)
    start_wall: float  # the same moment, time.time()
    started: float | None = None  # page.started received
    first_delta: float | None = None
    text_done: float | None = None
    image_done: float | None = None
    image_failed: bool = False

    @property
    def complete(self) -> float | None:
        if self.text_done is None or self.image_done is None:
            return None
        return max(self.text_done, self.image_done)

    def since_start(self) -> dict[str, float | None]:
        def rel(mark: float | None) -> float | None:
            return None if mark is None else mark - self.start

        return {
            "first_delta": rel(self.first_delta),
            "text_done": rel(self.text_done),
            "image_done": rel(self.image_done),
            "complete": rel(self.complete),
        }


@dataclass
class Reading:
    story_id: str = ""
    pages: dict[int, PageTimes] = field(default_factory=dict)
    # receipt - ts of every text delta, and receipt - at of every durable event sent live.
    delta_lag: list[float] = field(default_factory=list)
    event_lag: list[float] = field(default_factory=list)
    # `at` of every durable event: (page, or -1 for a story event, type) -> unix time stored.
    stored: dict[tuple[int, str], float] = field(default_factory=dict)
    frames: int = 0
    create_retries: int = 0
    error: str | None = None
    gateway: int = 0  # which gateway of the run it read from

    def done(self, pages: int) -> bool:
        return all(p in self.pages and self.pages[p].complete is not None for p in range(pages))


def _at_seconds(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class StoryReader:
    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        pages: int,
        compression: str,
        read_seconds: float = 0.0,
    ) -> None:
        self.base_url = base_url
        self.http = http
        self.pages = pages
        self.read_seconds = read_seconds
        self._reading_tasks: set[asyncio.Task[None]] = set()
        self.options = socket_options(compression)
        self.reading = Reading()
        self._connected_at = 0.0

    async def play(self, n: int, *, limit: float) -> Reading:
        try:
            async with asyncio.timeout(limit):
                await self._play(n)
        except TimeoutError:
            self.reading.error = f"timed out after {limit:.0f}s"
        except Exception as exc:  # one reader's failure is a figure, not the end of the run
            self.reading.error = f"{type(exc).__name__}: {exc}"[:300]
        return self.reading

    async def _play(self, n: int) -> None:
        start, start_wall = time.monotonic(), time.time()
        story_id, token = await self._create(premise(n))
        self.reading.story_id = story_id
        self.reading.pages[0] = PageTimes(0, start, start_wall)
        url = self.base_url.replace("http://", "ws://") + f"/ws/stories/{story_id}?token={token}&after=0"
        async with connect(url, **self.options) as ws:
            self._connected_at = time.time()
            async for raw in ws:
                now, wall = time.monotonic(), time.time()
                if await self._on_frame(ws, json.loads(raw), now, wall):
                    return

    async def _create(self, text: str) -> tuple[str, str]:
        while True:
            r = await self.http.post("/api/stories", json={"premise": text, "language": "zh"})
            if r.status_code == 201:
                body = r.json()
                return str(body["story_id"]), str(body["token"])
            if r.status_code not in (429, 503):
                raise RuntimeError(f"POST /api/stories answered {r.status_code}: {r.text[:200]}")
            self.reading.create_retries += 1
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    async def _on_frame(self, ws: ClientConnection, msg: dict[str, Any], now: float, wall: float) -> bool:
        """Record one frame; True when the reader has all its pages."""
        self.reading.frames += 1
        kind = msg.get("type")
        page = msg.get("page")
        if kind == "page.text.delta":
            self._delta(msg, now, wall)
            return False
        at = _at_seconds(msg.get("at"))
        if at is not None:
            self.reading.stored.setdefault((page if isinstance(page, int) else -1, str(kind)), at)
            if at >= self._connected_at:  # live, not replayed on connect
                self.reading.event_lag.append(wall - at)
        times = self.reading.pages.get(page) if isinstance(page, int) else None
        if kind == "page.started" and times is not None:
            times.started = times.started or now
        elif kind == "page.text.done" and times is not None:
            times.text_done = now
            await self._next_page(ws, msg)
        elif kind in ("page.image.done", "page.image.failed") and times is not None:
            times.image_done, times.image_failed = now, kind == "page.image.failed"
        elif kind in ("page.failed", "error"):
            self.reading.error = f"{kind}: {json.dumps(msg.get('error'), ensure_ascii=False)[:200]}"
            return True
        return self.reading.done(self.pages)

    def _delta(self, msg: dict[str, Any], now: float, wall: float) -> None:
        times = self.reading.pages.get(msg.get("page", -1))
        if times is not None and times.first_delta is None:
            times.first_delta = now
        ts = msg.get("ts")
        if isinstance(ts, int | float) and ts > 0:
            self.reading.delta_lag.append(wall - ts)

    async def _next_page(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        page = int(msg["page"])
        if page + 1 >= self.pages or not msg.get("choices") or page + 1 in self.reading.pages:
            return
        if self.read_seconds <= 0:
            await self._choose(ws, page)
            return

        async def read_then_choose() -> None:
            await asyncio.sleep(self.read_seconds)
            try:
                await self._choose(ws, page)
            except Exception as exc:  # the socket closed while the page was read
                self.reading.error = self.reading.error or f"{type(exc).__name__}: {exc}"[:300]

        task = asyncio.create_task(read_then_choose())
        self._reading_tasks.add(task)
        task.add_done_callback(self._reading_tasks.discard)

    async def _choose(self, ws: ClientConnection, page: int) -> None:
        if page + 1 in self.reading.pages:
            return
        self.reading.pages[page + 1] = PageTimes(page + 1, time.monotonic(), time.time())
        await ws.send(json.dumps({"type": "choose", "page": page, "choice": 0}))


async def play_all(
    base_urls: list[str],
    *,
    readers: int,
    pages: int,
    ramp: float,
    compression: str,
    limit: float,
    read_seconds: float = 0.0,
) -> tuple[list[Reading], float]:
    """Run `readers` readers arriving over `ramp` seconds, reader n on gateway n mod the
    gateways; their readings and the wall time."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with contextlib.AsyncExitStack() as clients:
        https = [
            await clients.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False)
            )
            for url in base_urls
        ]
        started = time.monotonic()

        async def one(n: int) -> Reading:
            await asyncio.sleep(ramp * n / max(readers, 1))
            at = n % len(base_urls)
            reader = StoryReader(
                base_urls[at], https[at], pages=pages, compression=compression, read_seconds=read_seconds
            )
            reader.reading.gateway = at
            return await reader.play(n, limit=limit)

        readings = await asyncio.gather(*(one(n) for n in range(readers)))
        return list(readings), time.monotonic() - started
