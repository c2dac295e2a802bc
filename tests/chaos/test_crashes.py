"""Crashes and restarts of real processes on the real broker: nothing lost, nothing twice.

Each scenario prints what it observed: pages asked for and delivered, duplicates,
and how long recovery took.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from services.devstack.procs import wait_http
from tests.support.reader import AutoReader, Reading
from tests.support.stack import running_stack

PAGES = 4


def report(name: str, reader: AutoReader, **more: Any) -> dict[str, int]:
    figures = reader.figures()
    figures["pages_asked"] = PAGES
    line = ", ".join(f"{k}={v}" for k, v in {**figures, **more}.items())
    print(f"\n[{name}] {line}")
    return figures


def assert_clean(figures: dict[str, int]) -> None:
    assert figures["duplicate_events"] == 0 and figures["missing_events"] == 0
    assert figures["duplicate_pages"] == 0
    assert figures["pages_delivered"] == figures["pages_asked"]
    assert figures["pictures"] == figures["pages_asked"]


async def wait_for(predicate: Any, *, limit: float = 60) -> float:
    start = time.monotonic()
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polls what the readers recorded
            await asyncio.sleep(0.05)
    return time.monotonic() - start


def streaming_page(reader: AutoReader) -> int | None:
    """The page whose text is arriving right now, if any."""
    done = {e["page"] for e in reader.reading.of("page.text.done")}
    live = [d["page"] for d in reader.reading.deltas if d["page"] not in done]
    return live[-1] if live else None


async def test_llm_worker_killed_while_streaming_a_page(amqp_url: str, tmp_path: Path) -> None:
    with running_stack(amqp_url, tmp_path, name="chaos-llm", moonshot_tps=12.0, gateways=1) as stack:
        reader = AutoReader([stack.gateway_url], premise="一只想去月亮上的小兔子")
        play = asyncio.create_task(reader.play())
        await wait_for(lambda: streaming_page(reader) == 1)
        killed_at = time.monotonic()
        stack.procs["llm_worker"].kill()
        stack.start_worker("llm_worker", n=1)  # the replacement
        await play
        async with httpx.AsyncClient(timeout=10) as http:
            drawn = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()["requests"]
        recovered = next(t for t, m in enumerate(reader.reading.stream) if m["type"] == "page.text.reset")
        reset_at = reader.reading.when(lambda m: m["type"] == "page.text.reset") or killed_at
        done_at = reader.reading.when(lambda m: m["type"] == "page.text.done" and m["page"] == 1) or 0
        figures = report(
            "llm_worker SIGKILL",
            reader,
            rewrite_started_s=round(reset_at - killed_at, 2),
            page_done_s=round(done_at - killed_at, 1),
        )
    assert_clean(figures)
    assert [r["page"] for r in reader.resets] == [1], "the reader was told to discard the partial page"
    # The rewritten page asked for its picture again; it was drawn once all the same.
    assert drawn.get("compositions", 0) + drawn.get("generations", 0) == PAGES + 1, drawn  # + the sheet
    # After the reset, the page's text is rebuilt cleanly from offset 0.
    after_reset = reader.reading.stream[recovered:]
    text = ""
    for m in after_reset:
        if m["type"] == "page.text.delta" and m["page"] == 1:
            text = text[: m["offset"]] + m["delta"]
        if m["type"] == "page.text.done" and m["page"] == 1:
            assert text == m["text"]
            break


async def test_image_worker_killed_while_drawing(amqp_url: str, tmp_path: Path) -> None:
    """The picture being drawn is not asked for again by the worker that takes over:
    jimeng goes on drawing, and charging, after its client died. The reader is told the
    picture was interrupted and redraws it: one more paid picture, asked for by the reader."""
    with running_stack(amqp_url, tmp_path, name="chaos-image", jimeng_seconds=4.0, gateways=1) as stack:
        reader = AutoReader([stack.gateway_url], premise="A dragon who is afraid of the dark", language="en")
        play = asyncio.create_task(reader.play())
        async with httpx.AsyncClient(timeout=10) as http:
            # Page 0's picture (composed from the sheet) is being drawn at jimeng.
            for _ in range(600):
                stats = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
                if stats["requests"].get("compositions", 0) >= 1 and stats["in_flight"] >= 1:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        stack.procs["image_worker"].kill()
        stack.start_worker("image_worker", n=1)

        def page0(kind: str) -> bool:
            return any(e["page"] == 0 for e in reader.reading.of(kind))

        await wait_for(lambda: page0("page.image.failed") or page0("page.image.done"))
        told = time.monotonic() - killed_at
        await play
        # Every picture the killed worker was drawing failed as interrupted; the reader
        # redraws each one.
        failed = reader.reading.of("page.image.failed")
        async with httpx.AsyncClient(timeout=10) as http:
            for event in failed:
                r = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.reader.story_id}/pages/{event['page']}/image/retry",
                    headers=reader.reader.auth,
                )
                assert r.status_code == 202, r.text
            redrawn = {e["page"] for e in failed}
            replay = Reading()
            await reader.reader.read(
                replay,
                until=lambda m: (
                    redrawn
                    <= {
                        e["page"]
                        for e in replay.of("page.image.done")
                        if e["seq"] > max(f["seq"] for f in failed)
                    }
                ),
            )
            recovery = time.monotonic() - killed_at
            await asyncio.sleep(4.5)  # the killed worker's drawings finish upstream all the same
            stats = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
        figures = report(
            "image_worker SIGKILL",
            reader,
            interrupted=len(failed),
            told_s=round(told, 1),
            recovery_s=round(recovery, 1),
        )
    assert failed and {e["error"]["code"] for e in failed} == {"image_interrupted"}, failed
    # The sheet and every page once, and each interrupted picture once more because the
    # reader asked: the interrupted ones were paid for and never seen. Nothing was asked
    # for again by itself.
    asked = stats["requests"].get("generations", 0) + stats["requests"].get("compositions", 0)
    assert stats["paid"] == asked == PAGES + 1 + len(failed) and stats["paid_unseen"] == len(failed), stats
    figures["pictures"] += len(redrawn)
    assert_clean(figures)


async def test_gateway_killed_with_two_replicas(amqp_url: str, tmp_path: Path) -> None:
    with running_stack(amqp_url, tmp_path, name="chaos-gateway", moonshot_tps=25.0, gateways=2) as stack:
        reader = AutoReader([stack.gateway_url, stack.gateway_url_of(1)], premise="会说话的小雨伞", age=4)
        play = asyncio.create_task(reader.play())
        await wait_for(lambda: bool(reader.reading.of("page.text.done")))
        killed_at = time.monotonic()
        stack.procs["gateway"].kill()
        await asyncio.sleep(3.0)  # pages go on being finished while it is down
        stack.start_gateway(0)
        restarted = time.monotonic() - killed_at
        await play
        figures = report("gateway SIGKILL", reader, down_s=round(restarted, 1))
        async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
            story = (
                await http.get(f"/api/stories/{reader.reader.story_id}", headers=reader.reader.auth)
            ).json()
    assert_clean(figures)
    assert reader.reconnects >= 1
    assert len(story["pages"]) == PAGES and story["status"] == "ended"


async def test_broker_restart(amqp_url: str, tmp_path: Path) -> None:
    import shutil
    import subprocess

    if not shutil.which("rabbitmqctl") or "127.0.0.1" not in amqp_url:
        import pytest

        pytest.skip("needs the local broker and rabbitmqctl to stop and start it")
    with running_stack(
        amqp_url, tmp_path, name="chaos-broker", moonshot_tps=20.0, jimeng_seconds=3.0
    ) as stack:
        readers = [
            AutoReader([stack.gateway_url, stack.gateway_url_of(1)], premise=f"第{i}个故事：森林里的音乐会")
            for i in range(3)
        ]
        plays = [asyncio.create_task(r.play(limit=180)) for r in readers]
        await wait_for(lambda: all(r.reading.of("page.text.done") for r in readers))
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        stopped_at = time.monotonic()
        try:
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as http:
                t0 = time.monotonic()
                refused = await http.post("/api/stories", json={"premise": "during the outage"})
                answer_s = time.monotonic() - t0
                ready = await http.get("/readyz")
        finally:
            await asyncio.to_thread(
                subprocess.run, ["rabbitmqctl", "start_app"], check=True, capture_output=True
            )
        outage = time.monotonic() - stopped_at
        await asyncio.to_thread(wait_http, f"{stack.gateway_url}/readyz", timeout=60)
        await asyncio.gather(*plays)
        total = time.monotonic() - stopped_at
        dead = stack.dead()
        all_figures = [report(f"broker restart, story {i}", r) for i, r in enumerate(readers)]
        print(
            f"[broker restart] outage={outage:.1f}s, 503 answered in {answer_s * 1000:.0f} ms, "
            f"all stories done {total:.1f}s after the stop"
        )
    assert refused.status_code == 503 and refused.headers.get("Retry-After")
    assert refused.json()["error"]["code"] == "busy"
    assert answer_s < 1.0
    assert ready.status_code == 503 and "unreachable" in ready.json()["checks"]["broker"]
    for figures in all_figures:
        assert_clean(figures)
    # Text streams live again after the broker is back (the live channels were reopened).
    for r in readers:
        assert any(d["page"] == PAGES - 1 for d in r.reading.deltas), "the last page was not streamed"
    assert not dead, "every service reconnected by itself, none exited"
