"""Pictures drawn through Volcengine Ark (its fake as a real server) on the real broker.

Each scenario records what the reader sees, what /readyz says and how many upstream
calls and paid pictures one picture cost; `ARK_FIGURES` collects them for the log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.reader import Reader, Reading
from tests.support.stack import ARTIFACTS, running_stack

pytestmark = pytest.mark.e2e

FIGURES = ARTIFACTS / "ark-figures.json"


def record(scenario: str, **figures: Any) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known[scenario] = figures
    FIGURES.write_text(json.dumps(known, indent=2, ensure_ascii=False))


def drawn(reading: Reading, page: int) -> bool:
    return any(m["page"] == page for m in reading.of("page.image.done"))


async def fake_stats(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    result: dict[str, Any] = (await http.get(f"{url}/_fake/stats")).json()
    return result


async def test_a_story_drawn_through_ark_survives_a_refusal_a_rate_limit_and_fails_fast_on_quota(
    amqp_url: str, tmp_path: Path
) -> None:
    with running_stack(
        amqp_url, tmp_path, name="ark", gateways=1, use_fake_ark=True, ark_seconds=0.3
    ) as stack:
        ops, fake = stack.ops_urls["image_worker"], stack.ark_fake_url
        reader = Reader(stack.gateway_url)
        reading = Reading()
        async with httpx.AsyncClient(timeout=20) as http:
            ready = await http.get(f"{ops}/readyz")
            assert ready.status_code == 200 and ready.json()["checks"]["ark"] == "ok", ready.text
            # The first picture (the character sheet) is refused by policy, then its
            # softened prompt meets a rate limit; the next attempt draws it.
            for mode in ("content_policy_input", "rate_limit"):
                await http.post(f"{fake}/_fake/faults", json={"mode": mode})
            try:
                started = time.monotonic()
                await reader.start("小狐狸和月亮", age=5)
                await reader.read(reading, until=lambda m: drawn(reading, 0), limit=90)
                first_page = time.monotonic() - started
                stats = await fake_stats(http, fake)
                story = await reader.story()

                # Quota: the redraw of page 0 fails at once, after one call, nothing paid.
                await http.post(f"{fake}/_fake/faults", json={"mode": "quota"})
                before = stats
                asked = time.monotonic()
                r = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.story_id}/pages/0/image/retry",
                    headers=reader.auth,
                )
                assert r.status_code == 202
                await reader.read(reading, until=lambda m: m["type"] == "page.image.failed", limit=30)
                quota_seconds = time.monotonic() - asked
                after = await fake_stats(http, fake)
                quota_ready = (await http.get(f"{ops}/readyz")).json()["checks"]["ark"]
            finally:
                await reader.close()

    prompts = [r.get("prompt", "") for r in stats["recent"] if "prompt" in r]
    assert stats["faults_served"] == {"content_policy_input": 1, "rate_limit": 1}
    assert prompts[1].startswith("A gentle, cheerful"), "the refused prompt was softened"
    assert story["character_sheet"]["status"] == "ready"
    page = story["pages"][0]["image"]
    assert page["status"] == "ready" and page["reference"] == "character_sheet", page
    sent_sheet = [r for r in stats["recent"] if "image" in r]
    assert sent_sheet and sent_sheet[0]["image"].startswith("data:image/"), "the sheet goes in as `image`"
    assert all(r["size"] == "2352x1760" for r in sent_sheet), "pages are drawn 4:3 at 2K"
    # The sheet: refused, softened and rate-limited in attempt 1, drawn in attempt 2.
    sheet_calls = len([r for r in stats["recent"] if "prompt" in r and "image" not in r])
    assert sheet_calls == 3

    failed = reading.of("page.image.failed")[0]
    assert failed["page"] == 0 and failed["error"]["code"] == "image_no_credits"
    assert after["requests"]["generations"] - before["requests"]["generations"] == 1
    assert after["paid"] == before["paid"], "a refusal for quota is not a picture"
    assert quota_seconds < 10, "no retries for an account without quota"
    assert "top up" in quota_ready, quota_ready
    record(
        "ark: content policy once, then 429 once (on the character sheet)",
        reader_sees="the picture arrives (drawn from the character sheet)",
        readyz="200, ark ok",
        sheet_calls=sheet_calls,
        paid_pictures=stats["paid"],
        pictures_drawn=len(reading.of("page.image.done")) + len(reading.of("story.sheet.done")),
        seconds_to_first_page_picture=round(first_page, 1),
    )
    record(
        "ark: quota",
        reader_sees=failed["error"]["message"],
        readyz=f"503, ark: {quota_ready}",
        calls=after["requests"]["generations"] - before["requests"]["generations"],
        paid=after["paid"] - before["paid"],
        seconds_to_failure=round(quota_seconds, 1),
    )


async def test_a_refused_key_fails_pictures_at_once_and_makes_the_worker_unready(
    amqp_url: str, tmp_path: Path
) -> None:
    wrong = "ark-wrong-key-0000c0de"
    with running_stack(
        amqp_url,
        tmp_path,
        name="ark-key",
        gateways=1,
        use_fake_ark=True,
        ark_seconds=0.3,
        extra_env={"ARK_API_KEY": wrong, "CREATE_PER_MINUTE": "1000"},
    ) as stack:
        ops, fake = stack.ops_urls["image_worker"], stack.ark_fake_url
        reader = Reader(stack.gateway_url)
        reading = Reading()
        async with httpx.AsyncClient(timeout=20) as http:
            ready = await http.get(f"{ops}/readyz")
            try:
                started = time.monotonic()
                await reader.start("一只会唱歌的小鸟")
                await reader.read(
                    reading,
                    until=lambda m: m["type"] == "page.image.failed" and m["page"] == 0,
                    limit=60,
                )
                seconds = time.monotonic() - started
                stats = await fake_stats(http, fake)
            finally:
                await reader.close()
    assert ready.status_code == 503
    reason = ready.json()["checks"]["ark"]
    assert reason.startswith("the key was refused (401)") and "ARK_API_KEY" in reason and wrong not in reason
    failed = reading.of("page.image.failed")[0]
    assert failed["error"]["code"] == "image_auth"
    assert reading.of("story.sheet.failed"), "the sheet failed too, and said so"
    # The readiness probe, the sheet and page 0 (from text, as the sheet failed): one
    # call each, all refused before any drawing, none paid.
    assert stats["requests"]["generations"] == 3 and stats["errors"] == {"AuthenticationError": 3}, stats
    assert stats["paid"] == 0
    log = (ARTIFACTS / "logs" / "ark-key" / "image_worker.log").read_text()
    assert wrong not in log, "the key never appears in logs"
    record(
        "ark: bad key",
        reader_sees=failed["error"]["message"],
        readyz=f"503, ark: {reason}",
        calls_per_picture=1,
        paid=0,
        seconds_to_failure=round(seconds, 1),
    )
