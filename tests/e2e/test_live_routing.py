"""Live traffic follows readers: a gateway receives the live frames of the stories its
own sockets read, and no others (counted by each gateway's /metrics)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support.reader import AutoReader
from tests.support.stack import running_stack


def live_received(metrics: str) -> int:
    for line in metrics.splitlines():
        if line.startswith("storybook_live_frames_received_total "):
            return int(float(line.split()[1]))
    raise AssertionError("the gateway does not count the live frames it receives")


async def story_written(base: str, story_id: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while True:
            story = (await http.get(f"/api/stories/{story_id}", headers=auth)).json()
            if story["pages"] and story["pages"][0].get("text"):
                return
            await asyncio.sleep(0.2)


async def test_each_gateway_receives_only_its_own_readers_stories(amqp_url: str, tmp_path: Path) -> None:
    with running_stack(amqp_url, tmp_path, name="live-routing", gateways=2) as stack:
        bases = [stack.gateway_url, stack.gateway_url_of(1)]
        readers = [AutoReader([base], premise=f"第{n}只小鸭子去旅行") for n, base in enumerate(bases)]
        async with httpx.AsyncClient(base_url=bases[0], timeout=10) as http:
            # A story nobody reads: its first page is written and streamed to no gateway.
            unread = (await http.post("/api/stories", json={"premise": "没有人读的故事"})).json()
        await asyncio.gather(*(r.play(limit=120) for r in readers))
        await asyncio.wait_for(story_written(bases[0], unread["story_id"], unread["token"]), 60)
        received = []
        for base in bases:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                received.append(live_received((await http.get("/metrics")).text))
    for reader, got in zip(readers, received, strict=True):
        live = len(reader.reading.deltas)
        assert live > 20, "the reader's pages were streamed"
        # Every delta its reader saw came through its gateway; beyond those only the
        # story's own durable events (and a hint or two) arrive there: not the other
        # reader's story, nor the story nobody reads.
        assert live <= got <= live + len(reader.reading.events) + 5, (got, live)
