"""The image path against a jimeng fake that behaves like the real server.

Each scenario says what the reader sees, what /readyz says, and how many paid
generations one picture cost (never more than one unless the reader asked again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.amqp import Link
from services.common.contracts import JimengSessions
from services.common.control import send_sessions
from services.common.topology import Topology
from services.devstack.procs import Stack
from tests.support.reader import Reader, Reading
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e

BROKE = "brokesession0000aa11"
LIVE = "livesession0000bb22"
FRESH = "freshsession0000cc33"
DEAD = "deadsession0000dd44"
LOGS = Path(__file__).resolve().parents[2] / "test-artifacts" / "logs"


def picture(page: int) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] in ("page.image.done", "page.image.failed") and m.get("page") == page


async def stats(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        answer: dict[str, Any] = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
        return answer


async def readyz(
    stack: Stack, *, until: Callable[[dict[str, Any]], bool], limit: float = 20
) -> dict[str, Any]:
    """/readyz of the image worker once `until(body)` holds (or the last answer)."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=60) as http:
        while True:
            r = await http.get(f"{stack.ops_urls['image_worker']}/readyz")
            body: dict[str, Any] = {"code": r.status_code, **r.json()}
            if until(body) or time.monotonic() > deadline:
                return body
            await asyncio.sleep(0.3)


async def first_picture(stack: Stack, reading: Reading, premise: str = "一只小兔子去月亮") -> Reader:
    reader = Reader(stack.gateway_url)
    await reader.start(premise, age=5)
    await reader.read(reading, until=picture(0), limit=90)
    return reader


@pytest.fixture(scope="module")
def broke_and_live(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        tmp_path_factory.mktemp("jimeng-real"),
        name="jimeng-real",
        gateways=1,
        jimeng_seconds=0.3,
        jimeng_args=["--broke-ids", BROKE],
        jimeng_url_ttl=600.0,  # a picture's URL outlives the retries of its download
        extra_env={
            "JIMENG_SESSION_ID": f"{BROKE},{LIVE}",
            "JIMENG_TIMEOUT": "2",
            "JIMENG_CHECK_EVERY": "1",
            "CREATE_PER_MINUTE": "1000",
        },
    ) as stack:
        yield stack


async def test_an_id_without_credits_is_set_aside_and_every_picture_is_drawn(broke_and_live: Stack) -> None:
    reading = Reading()
    reader = await first_picture(broke_and_live, reading)
    try:
        await asyncio.sleep(0.5)  # the usage report follows the picture
        usage = (await reader.story())["usage"]
    finally:
        await reader.close()
    assert not reading.of("page.image.failed"), reading.of("page.image.failed")
    seen = await stats(broke_and_live)
    made = seen["requests"]["compositions"] + seen["requests"]["generations"]
    assert usage["image_calls"] == made and usage["pictures"] == seen["paid"] == 2, (usage, seen)
    # The watcher judges the ids at start: the broke one is never drawn with, or once.
    assert seen["sessions_used"].get(BROKE, 0) <= 1
    assert seen["paid"] == seen["requests"]["compositions"] + seen["requests"]["generations"] - seen[
        "sessions_used"
    ].get(BROKE, 0)
    ready = await readyz(broke_and_live, until=lambda b: True)
    assert ready["code"] == 200
    sessions = ready["checks"]["sessions"]
    assert "1 of 2 ids can draw" in sessions and "…aa11 no credits" in sessions and BROKE not in sessions
    assert "from JIMENG_SESSION_ID" in sessions


async def test_an_unreachable_jimeng_is_not_ready_and_marks_no_id_dead(broke_and_live: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(f"{broke_and_live.jimeng_url}/_fake/upstream", json={"down": True})
        try:
            down = await readyz(broke_and_live, until=lambda b: b["code"] == 503)
        finally:
            await http.post(f"{broke_and_live.jimeng_url}/_fake/upstream", json={"down": False})
    assert down["code"] == 503
    assert "jimeng-api cannot reach jimeng" in down["checks"]["sessions"]
    assert "expired" not in down["checks"]["sessions"]
    back = await readyz(broke_and_live, until=lambda b: b["code"] == 200)
    assert back["code"] == 200 and "1 of 2 ids can draw" in back["checks"]["sessions"], back


async def test_a_download_that_fails_is_tried_again_without_drawing_again(broke_and_live: Stack) -> None:
    before = await stats(broke_and_live)
    async with httpx.AsyncClient(timeout=10) as http:
        # The sheet is drawn and paid; its downloads fail for a while (the CDN's bad
        # minute): longer than one attempt waits, so a later attempt fetches it.
        await http.post(f"{broke_and_live.jimeng_url}/_fake/files", json={"fail": 4})
    reading = Reading()
    reader = await first_picture(broke_and_live, reading, premise="一只小鸭子找妈妈")
    try:
        story = await reader.story()
    finally:
        await reader.close()
    after = await stats(broke_and_live)
    assert not reading.of("page.image.failed")
    assert story["character_sheet"]["status"] == "ready", story["character_sheet"]
    assert story["pages"][0]["image"]["reference"] == "character_sheet"
    calls = sum(
        after["requests"].get(k, 0) - before["requests"].get(k, 0) for k in ("generations", "compositions")
    )
    paid = after["paid"] - before["paid"]
    assert calls == paid == 2, "the sheet and page 0, each drawn once: the failed download was fetched again"


async def test_a_picture_slower_than_the_timeout_is_paid_once_and_left_to_the_reader(
    broke_and_live: Stack,
) -> None:
    before = await stats(broke_and_live)
    async with httpx.AsyncClient(timeout=10) as http:
        # The sheet, then page 0's picture: both take 4 s, twice JIMENG_TIMEOUT.
        await http.post(
            f"{broke_and_live.jimeng_url}/_fake/faults", json={"mode": "slow", "count": 2, "seconds": 4}
        )
    reading = Reading()
    reader = await first_picture(broke_and_live, reading, premise="一只小熊学画画")
    try:
        failed = reading.of("page.image.failed")
        assert failed and failed[0]["error"]["code"] == "image_timeout"
        await asyncio.sleep(4.5)  # jimeng finishes (and charges for) what nobody waits for
        after = await stats(broke_and_live)
        calls = sum(
            after["requests"].get(k, 0) - before["requests"].get(k, 0)
            for k in ("generations", "compositions")
        )
        assert calls == 2, "one call for the sheet, one for the page: neither asked again"
        assert after["paid_unseen"] - before["paid_unseen"] == 2
        # The reader asks again: one more paid picture, and this time it arrives.
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(
                f"{broke_and_live.gateway_url}/api/stories/{reader.story_id}/pages/0/image/retry",
                headers=reader.auth,
            )
            assert r.status_code == 202
        await reader.read(
            reading, until=lambda m: m["type"] == "page.image.done" and m["page"] == 0, limit=60
        )
        redrawn = await stats(broke_and_live)
        assert redrawn["paid"] - after["paid"] == 1
    finally:
        await reader.close()


async def test_a_region_id_with_a_model_it_lacks_is_a_configuration_error(
    amqp_url: str, tmp_path: Path
) -> None:
    with running_stack(
        amqp_url,
        tmp_path,
        name="jimeng-region",
        gateways=1,
        jimeng_seconds=0.3,
        extra_env={
            "JIMENG_SESSION_ID": f"us-{LIVE}",
            "JIMENG_MODEL": "jimeng-5.0",
            "CREATE_PER_MINUTE": "1000",
        },
    ) as stack:
        reading = Reading()
        started = time.monotonic()
        reader = await first_picture(stack, reading)
        took = time.monotonic() - started
        await asyncio.sleep(0.5)
        usage = (await reader.story())["usage"]
        await reader.close()
        seen = await stats(stack)
        ready = await readyz(stack, until=lambda b: "drawing" in b["checks"])
    failed = reading.of("page.image.failed")
    assert failed and failed[0]["error"]["code"] == "image_config"
    assert "not set up" in failed[0]["error"]["message"]
    # One refused call (the sheet's); the id is then set aside for this model, and page 0
    # fails without asking again. Nothing retried.
    assert seen["requests"].get("generations", 0) + seen["requests"].get("compositions", 0) == 1
    assert seen["paid"] == 0
    assert (usage["image_calls"], usage["pictures"]) == (1, 0), "counted as made, nothing paid"
    assert ready["code"] == 503 and "JIMENG_MODEL" in ready["checks"]["drawing"]
    print(f"\n[region id + jimeng-5.0] reader got image_config after {took:.1f}s; 1 call, 0 paid")


async def test_a_changed_environment_wins_over_an_older_kept_set(amqp_url: str, tmp_path: Path) -> None:
    with running_stack(
        amqp_url,
        tmp_path,
        name="jimeng-env",
        gateways=1,
        jimeng_seconds=0.3,
        jimeng_args=["--dead-ids", DEAD],
        extra_env={"JIMENG_SESSION_ID": LIVE, "CREATE_PER_MINUTE": "1000"},
    ) as stack:
        async with Link(amqp_url) as link:
            command = JimengSessions(mode="set", ids=[DEAD], at=time.time())
            await send_sessions(link, Topology(stack.config.prefix), command)
        applied = await readyz(stack, until=lambda b: b["code"] == 503)
        assert "…dd44 expired" in applied["checks"]["sessions"]
        assert "`jimeng-session set` at" in applied["checks"]["sessions"]

        # The operator rotates the usual way: edits the environment and restarts.
        await asyncio.sleep(1.1)  # the change comes after the command, to the second
        stack.config.extra_env["JIMENG_SESSION_ID"] = FRESH
        stack.start_worker("image_worker")
        ready = await readyz(stack, until=lambda b: b["code"] == 200)
        assert ready["code"] == 200, ready
        assert "JIMENG_SESSION_ID (changed after `jimeng-session set` at" in ready["checks"]["sessions"]
        reading = Reading()
        reader = await first_picture(stack, reading)
        await reader.close()
        assert not reading.of("page.image.failed")
        assert (await stats(stack))["sessions_used"].get(FRESH, 0) >= 1

        # Restarted again with the same environment: still the environment's ids.
        stack.start_worker("image_worker")
        again = await readyz(stack, until=lambda b: b["code"] == 200)
        assert again["code"] == 200 and "changed after" in again["checks"]["sessions"]
    text = (LOGS / "jimeng-env" / "image_worker.log").read_text()
    assert "are older than this JIMENG_SESSION_ID" in text
    assert all(sid not in text for sid in (LIVE, FRESH, DEAD))
