"""A reader's client: the HTTP API and the story WebSocket, as a browser would use them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets


@dataclass
class Reading:
    """Everything one reader received, across reconnects."""

    events: list[dict[str, Any]] = field(default_factory=list)
    deltas: list[dict[str, Any]] = field(default_factory=list)
    # (position in the combined stream) so we can tell what came before what
    stream: list[dict[str, Any]] = field(default_factory=list)

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
