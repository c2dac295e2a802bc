"""A reader's client: the HTTP API and the story WebSocket, as a browser would use them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
import websockets.exceptions


@dataclass
class Reading:
    """Everything one reader received, across reconnects."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deltas: list[dict[str, Any]] = field(default_factory=list)
    # (position in the combined stream) so we can tell what came before what
    stream: list[dict[str, Any]] = field(default_factory=list)
    # time.monotonic() when each message of `stream` arrived
    arrived: list[float] = field(default_factory=list)

    def when(self, predicate: Any) -> float | None:
        for msg, at in zip(self.stream, self.arrived, strict=True):
            if predicate(msg):
                return at
        return None

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


class Reader:
    def __init__(self, base_url: str) -> None:
        self.base = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)
        self.story_id = ""
        self.token = ""

    async def close(self) -> None:
        await self.http.aclose()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self, premise: str, **fields: Any) -> None:
        r = await self.http.post("/api/stories", json={"premise": premise, **fields})
        assert r.status_code == 201, r.text
        self.story_id, self.token = r.json()["story_id"], r.json()["token"]

    def ws_url(self, after: int, base: str | None = None) -> str:
        root = (base or self.base).replace("http://", "ws://")
        return f"{root}/ws/stories/{self.story_id}?token={self.token}&after={after}"

    async def read(
        self,
        reading: Reading,
        *,
        until: Any,
        on_event: Any = None,
        base: str | None = None,
        limit: float = 60,
    ) -> None:
        """Connect with after=<last seq seen> and read until `until(message)` is true."""
        async with websockets.connect(self.ws_url(reading.last_seq, base)) as ws:
            async with asyncio.timeout(limit):
                async for raw in ws:
                    msg = json.loads(raw)
                    reading.stream.append(msg)
                    reading.arrived.append(time.monotonic())
                    if "seq" not in msg:
                        reading.deltas.append(msg)
                    else:
                        reading.events.append(msg)
                        if on_event is not None:
                            await on_event(ws, msg)
                    if until(msg):
                        return

    async def story(self) -> dict[str, Any]:
        r = await self.http.get(f"/api/stories/{self.story_id}", headers=self.auth)
        assert r.status_code == 200, r.text
        return dict(r.json())


class AutoReader:
    """A reader who plays a whole story: chooses the first option on every page and,
    whenever the socket drops, reconnects (to the next gateway in the list) with
    `after` = the last seq seen. Records everything it received."""

    def __init__(self, bases: list[str], *, premise: str, **fields: Any) -> None:
        self.bases = bases
        self.premise = premise
        self.fields = fields
        self.reader = Reader(bases[0])
        self.reading = Reading()
        self.reconnects = 0
        self.resets: list[dict[str, Any]] = []
        self.pages_expected = 0

    def finished(self) -> bool:
        ended = bool(self.reading.of("story.ended"))
        pictures = {e["page"] for e in self.reading.of("page.image.done")}
        failed = {e["page"] for e in self.reading.of("page.image.failed")}
        pages = {e["page"] for e in self.reading.of("page.text.done")}
        return ended and pages <= (pictures | failed)

    async def play(self, *, limit: float = 120) -> None:
        try:
            await self._play(limit)
        finally:
            await self.reader.close()

    async def _play(self, limit: float) -> None:
        await self.reader.start(self.premise, **self.fields)
        chosen: set[int] = set()

        async def choose(ws: Any, ev: dict[str, Any]) -> None:
            if ev["type"] == "page.text.done" and ev["choices"] and ev["page"] not in chosen:
                chosen.add(ev["page"])
                await ws.send(json.dumps({"type": "choose", "page": ev["page"], "choice": 0}))

        async with asyncio.timeout(limit):
            turn = 0
            while not self.finished():
                base = self.bases[turn % len(self.bases)]
                with contextlib.suppress(OSError, websockets.exceptions.WebSocketException):
                    await self.reader.read(
                        self.reading,
                        until=lambda m: self._note(m) and self.finished(),
                        on_event=choose,
                        base=base,
                        limit=limit,
                    )
                if not self.finished():
                    self.reconnects += 1
                    turn += 1
                    await asyncio.sleep(0.3)
                    await self._choose_again(self.bases[turn % len(self.bases)])

    async def _choose_again(self, base: str) -> None:
        """A choice sent on a socket that died may never have arrived: send it again.

        The server answers 409 when it did arrive, and nothing changes."""
        done = self.reading.of("page.text.done")
        chosen = {e["page"] for e in self.reading.of("page.chosen")}
        if done and done[-1]["choices"] and done[-1]["page"] not in chosen:
            with contextlib.suppress(httpx.HTTPError):
                await self.reader.http.post(
                    f"{base}/api/stories/{self.reader.story_id}/choices",
                    json={"page": done[-1]["page"], "choice": 0},
                    headers=self.reader.auth,
                )

    def _note(self, msg: dict[str, Any]) -> bool:
        if msg["type"] == "page.text.reset":
            self.resets.append(msg)
        return True

    def figures(self) -> dict[str, int]:
        seqs = [e["seq"] for e in self.reading.events]
        done = [e["page"] for e in self.reading.of("page.text.done")]
        return {
            "events": len(seqs),
            "duplicate_events": len(seqs) - len(set(seqs)),
            "missing_events": (max(seqs) - len(set(seqs))) if seqs else 0,
            "pages_delivered": len(set(done)),
            "duplicate_pages": len(done) - len(set(done)),
            "pictures": len({e["page"] for e in self.reading.of("page.image.done")}),
            "reconnects": self.reconnects,
            "resets": len(self.resets),
        }
