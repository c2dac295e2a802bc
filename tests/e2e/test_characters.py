"""Pictures are composed from the story's character sheet, and say so when they are not."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.reader import Reader, Reading
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e


def page_done(reading: Reading, page: int) -> bool:
    """Text and picture both there (either may come first)."""
    return all(any(m["page"] == page for m in reading.of(t)) for t in ("page.text.done", "page.image.done"))


async def test_a_failed_composition_is_tried_again_with_the_sheet(amqp_url: str, tmp_path: Path) -> None:
    with running_stack(amqp_url, tmp_path, name="characters", gateways=1, jimeng_seconds=0.5) as stack:
        reader = Reader(stack.gateway_url)
        reading = Reading()
        try:
            await reader.start("小刺猬找朋友", age=4)
            await reader.read(reading, until=lambda m: page_done(reading, 0))
            async with httpx.AsyncClient(timeout=20) as http:
                # The next jimeng call (page 1's composition) fails: the next attempt is
                # composed from the sheet again, not drawn from text alone.
                await http.post(f"{stack.jimeng_url}/_fake/faults", json={"mode": "plain_error", "count": 1})
                r = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.story_id}/choices",
                    json={"page": 0, "choice": 0},
                    headers=reader.auth,
                )
                assert r.status_code == 202
                await reader.read(reading, until=lambda m: m["type"] == "page.image.done" and m["page"] == 1)
                stats = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
                sheet_url = reading.of("story.sheet.done")[0]["url"]
                sheet = Image.open(io.BytesIO((await http.get(f"{stack.gateway_url}{sheet_url}")).content))
            story = await reader.story()
        finally:
            await reader.close()
    first, second = story["pages"][0]["image"], story["pages"][1]["image"]
    assert first["reference"] == "character_sheet" and first["note"] is None
    assert second["reference"] == "character_sheet" and second["note"] is None
    # sheet (a generation), page 0, page 1 failed, page 1 again: three compositions.
    assert stats["requests"]["compositions"] == 3 and stats["requests"]["generations"] == 1
    assert sheet.width > sheet.height, "the sheet is drawn wide, characters side by side"


async def test_a_failed_sheet_can_be_drawn_again_and_later_pictures_use_it(
    amqp_url: str, tmp_path: Path
) -> None:
    with running_stack(amqp_url, tmp_path, name="sheet-again", gateways=1, jimeng_seconds=0.3) as stack:
        async with httpx.AsyncClient(timeout=20) as http:
            # The sheet is the first picture asked for: refused twice (the second time
            # softened), it fails for good; page 0 is drawn from its text alone.
            await http.post(f"{stack.jimeng_url}/_fake/faults", json={"mode": "content_policy", "count": 2})
            reader = Reader(stack.gateway_url)
            reading = Reading()
            try:
                await reader.start("小刺猬找朋友", age=4)
                await reader.read(reading, until=lambda m: page_done(reading, 0), limit=90)
                assert reading.of("story.sheet.failed")
                story = await reader.story()
                assert story["character_sheet"]["status"] == "failed"
                assert story["pages"][0]["image"]["reference"] == "text_only"

                asked = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.story_id}/sheet/retry", headers=reader.auth
                )
                assert asked.status_code == 202, asked.text
                again = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.story_id}/sheet/retry", headers=reader.auth
                )
                assert again.status_code == 409 and again.json()["error"]["message"]
                await reader.read(reading, until=lambda m: m["type"] == "story.sheet.done", limit=60)
                assert reading.of("story.sheet.started")

                # The page drawn next, and page 0 redrawn, are composed from the new sheet.
                r = await http.post(
                    f"{stack.gateway_url}/api/stories/{reader.story_id}/pages/0/image/retry",
                    headers=reader.auth,
                )
                assert r.status_code == 202
                await reader.read(
                    reading,
                    until=lambda m: (
                        m["type"] == "page.image.done"
                        and m["page"] == 0
                        and m["reference"] == "character_sheet"
                    ),
                    limit=60,
                )
                story = await reader.story()
            finally:
                await reader.close()
            stats = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
    assert story["character_sheet"]["status"] == "ready"
    redrawn = story["pages"][0]["image"]
    assert redrawn["reference"] == "character_sheet" and redrawn["note"] is None
    # The failed sheet twice, the sheet again, page 0 from text, page 0 from the sheet.
    assert stats["requests"]["generations"] == 4 and stats["requests"]["compositions"] == 1
