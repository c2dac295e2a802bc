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
                await reader.read(
                    reading, until=lambda m: m["type"] == "page.image.done" and m["page"] == 1
                )
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
