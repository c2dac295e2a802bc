"""A whole story, played by a reader over the real WebSocket, through every service.

Processes: two gateway replicas, llm_worker, image_worker, fake Moonshot, fake
jimeng; the real local RabbitMQ; SQLite on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from services.devstack.procs import Stack
from tests.support.reader import Reader, Reading
from tests.support.s3 import S3
from tests.support.stack import media_objects, running_stack

pytestmark = pytest.mark.e2e


def rebuild(deltas: list[dict[str, Any]], page: int) -> str:
    text = ""
    for d in deltas:
        if d["page"] == page:
            text = text[: d["offset"]] + d["delta"]
    return text


@pytest.fixture(scope="module", params=["file", "s3"])
def any_store(
    request: pytest.FixtureRequest, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The shared stack (pictures in a folder), or one keeping pictures in an S3 bucket,
    with claims and budgets in Redis, as several VMs run it."""
    if request.param == "file":
        yield request.getfixturevalue("stack")
        return
    s3: S3 = request.getfixturevalue("s3")
    env = s3.env(prefix="stories")
    tmp = tmp_path_factory.mktemp("s3stack")
    with running_stack(
        amqp_url,
        tmp,
        name="s3",
        media_store=env.pop("MEDIA_STORE"),
        redis_url=request.getfixturevalue("redis"),
        extra_env=env,
    ) as running:
        yield running
    assert not (tmp / "media").exists(), "nothing is written to local disk with an object store"


async def test_a_whole_story_with_a_reconnect_on_the_other_replica(any_store: Stack) -> None:
    stack = any_store
    reader = Reader(stack.gateway_url)
    other = stack.gateway_url_of(1)
    reading = Reading()
    try:
        await reader.start("一只想去月亮上的小兔子", age=5, language="zh", style="crayon")

        # Connection 1 (replica 0): page 0 streams in; the reader chooses on the socket;
        # we hang up as soon as page 1 has started streaming.
        async def choose_first(ws: Any, ev: dict[str, Any]) -> None:
            if ev["type"] == "page.text.done" and ev["page"] == 0:
                await ws.send('{"type": "choose", "page": 0, "choice": 1}')

        await reader.read(
            reading,
            until=lambda m: m["type"] == "page.text.delta" and m["page"] == 1,
            on_event=choose_first,
        )
        cut_at = reading.last_seq
        print(f"hung up mid-story after seq {cut_at}")

        # Connection 2, on the OTHER replica, from where we left.
        async def act_then_choose(ws: Any, ev: dict[str, Any]) -> None:
            if ev["type"] == "page.text.done" and ev["page"] == 1:
                r = await reader.http.post(
                    f"/api/stories/{reader.story_id}/choices",
                    json={"page": 1, "action": "小兔子请萤火虫帮忙照亮小路"},
                    headers=reader.auth,
                )
                assert r.status_code == 202, r.text
            if ev["type"] == "page.text.done" and ev["page"] == 2:
                await ws.send('{"type": "choose", "page": 2, "choice": 0}')

        def finished(_: dict[str, Any]) -> bool:
            return bool(reading.of("story.ended")) and len(reading.of("page.image.done")) == 4

        await reader.read(reading, until=finished, on_event=act_then_choose, base=other, limit=90)
    finally:
        story = await reader.story() if reader.token else None
        await reader.close()

    seqs = [e["seq"] for e in reading.events]
    print(f"events: {len(seqs)}, deltas: {len(reading.deltas)}, reconnect after seq {cut_at}")
    assert seqs == list(range(1, len(seqs) + 1)), "every durable event exactly once, in order"

    done = {e["page"]: e for e in reading.of("page.text.done")}
    assert sorted(done) == [0, 1, 2, 3]
    assert done[3]["choices"] == [] and all(2 <= len(done[p]["choices"]) <= 3 for p in (0, 1, 2))
    for page, ev in done.items():
        deltas_before = [
            m
            for m in reading.stream[: reading.stream.index(ev)]
            if m["type"] == "page.text.delta" and m["page"] == page
        ]
        assert len(deltas_before) >= 2, f"page {page}: text streamed before it was done"
        assert rebuild(deltas_before, page) == ev["text"], f"page {page}: deltas add up to the page"
        started = next(e for e in reading.of("page.image.started") if e["page"] == page)
        assert started["seq"] < ev["seq"], f"page {page}: picture requested before the text was done"

    chosen = reading.of("page.chosen")
    assert [(c["page"], c["choice"], c["action"]) for c in chosen] == [
        (0, 1, None),
        (1, None, "小兔子请萤火虫帮忙照亮小路"),
        (2, 0, None),
    ]
    assert "萤火虫" in done[2]["text"], "the typed idea reached the next page"

    assert story is not None and story["status"] == "ended" and story["title"]
    assert [p["text"] for p in story["pages"]] == [done[i]["text"] for i in range(4)]
    urls = [p["image"]["url"] for p in story["pages"]]
    assert all(p["image"]["status"] == "ready" for p in story["pages"])
    assert all(u.startswith("/media/") for u in urls)

    # jimeng's URLs expire; ours must not. Wait past the fake's URL lifetime.
    async with httpx.AsyncClient() as http:
        issued = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()["urls"]
        assert issued, "the fake reports the URLs it handed out"
        await asyncio.sleep(stack.config.jimeng_url_ttl + 1.5)  # expiry is rounded up to 1 s
        for upstream in issued[-4:]:
            assert (await http.get(upstream)).status_code == 403, "the fake's URL has expired"
        digests = set()
        for url in urls:
            r = await http.get(f"{other}{url}")
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
            Image.open(io.BytesIO(r.content)).verify()
            digests.add(hashlib.sha256(r.content).hexdigest())
    assert len(digests) == 4, "each page has its own picture"

    # The same characters on every page: a character sheet first, then every page's
    # picture composed from it.
    sheet = reading.of("story.sheet.done")
    assert len(sheet) == 1 and story["character_sheet"]["url"] == sheet[0]["url"]
    assert [e["reference"] for e in reading.of("page.image.done")] == ["character_sheet"] * 4
    assert all(p["image"]["reference"] == "character_sheet" for p in story["pages"])

    # The book is made from the same store: the cover and four pictures are in it.
    async with httpx.AsyncClient(base_url=other) as http:
        book = await http.get(f"/api/stories/{story['story_id']}/export/html", headers=reader.auth)
    assert book.status_code == 200 and len(re.findall(rb"data:image/", book.content)) == 5
    if stack.config.media_store:
        await count_objects(stack)


async def count_objects(stack: Stack) -> None:
    """What the story cost the object store: objects written by the image_worker, and
    requests the gateways and the image_worker made to read them."""
    async with httpx.AsyncClient() as http:
        worker = (await http.get(f"{stack.ops_urls['image_worker']}/metrics")).text
        gateways = [(await http.get(f"{stack.gateway_url_of(n)}/metrics")).text for n in range(2)]
    written = media_objects(worker, "put")
    read = sum(media_objects(text, "get") for text in [worker, *gateways])
    listed = media_objects(worker, "list")
    print(f"object store: {written} objects written, {read} read, {listed} listings (sheet looks)")
    assert written == 5, "four page pictures and the character sheet, each written once"
    assert read >= 4 + 4 + 5, "each page composed from the sheet, served, and put in the book"


async def test_started_on_one_replica_read_on_the_other(stack: Stack) -> None:
    writer = Reader(stack.gateway_url)
    await writer.start("A little robot who wants to learn to dance", language="en", age=7)
    reader = Reader(stack.gateway_url_of(1))
    reader.story_id, reader.token = writer.story_id, writer.token
    reading = Reading()
    t0 = time.monotonic()
    try:
        await reader.read(
            reading,
            until=lambda e: e["type"] == "page.text.done",
            limit=60,
        )
        story = await reader.story()
    finally:
        await writer.close()
        await reader.close()
    print(f"first page on the other replica after {time.monotonic() - t0:.1f}s")
    assert [e["type"] for e in reading.events][:2] == ["page.started", "story.outlined"]
    assert story["pages"][0]["text"] == reading.of("page.text.done")[0]["text"]
    assert story["language"] == "en" and story["pages"][0]["text"].isascii()
