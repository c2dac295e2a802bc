"""The child's own hero: named in the story, and their drawing is what the characters'
picture is drawn from. The upload is kept re-encoded with the story and never served."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.reader import Reader, Reading
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e


def _drawing() -> bytes:
    img = Image.new("RGBA", (1600, 1200), (0, 0, 0, 0))
    img.paste((240, 120, 40, 255), (500, 300, 1100, 900))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


async def test_the_sheet_is_drawn_from_the_childs_drawing(amqp_url: str, tmp_path: Path) -> None:
    drawing = _drawing()
    picture = "data:image/png;base64," + base64.b64encode(drawing).decode()
    with running_stack(amqp_url, tmp_path, name="hero", gateways=1, jimeng_seconds=0.3) as stack:
        reader = Reader(stack.gateway_url)
        reading = Reading()
        try:
            await reader.start(
                "A fox who wants to fly", age=5, language="en", hero_name="Pip", hero_picture=picture
            )
            # The sheet may be asked for while the outline is still streaming: wait for both.
            both = ("story.sheet.done", "story.outlined")
            await reader.read(reading, until=lambda m: all(reading.of(t) for t in both), limit=90)
            story = await reader.story()
            async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=20) as http:
                stats = (await http.get(f"{stack.jimeng_url}/_fake/stats")).json()
                served = await http.get(f"/media/{reader.story_id}/hero.jpg")
        finally:
            await reader.close()
        kept = stack.config.media_dir / reader.story_id / "hero.jpg"
        assert kept.is_file()
        data = kept.read_bytes()
    assert "Pip" in story["title"], "the hero's name is the story's"
    # The sheet is a composition from the drawing, not a picture from words alone.
    assert stats["requests"].get("generations", 0) == 0, stats["requests"]
    assert stats["requests"]["compositions"] >= 1
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG" and img.size == (1024, 768)
    assert data != drawing
    assert served.status_code == 404, "the hero picture is never served"


async def test_a_bad_hero_picture_is_refused_and_nothing_is_kept(amqp_url: str, tmp_path: Path) -> None:
    not_a_picture = "data:image/png;base64," + base64.b64encode(b"not a picture").decode()
    with running_stack(amqp_url, tmp_path, name="hero-bad", gateways=1) as stack:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=20) as http:
            bad = await http.post("/api/stories", json={"premise": "a fox", "hero_picture": not_a_picture})
            link = await http.post(
                "/api/stories", json={"premise": "a fox", "hero_picture": "https://x.test/a.png"}
            )
            huge = "data:image/png;base64," + "A" * 6_000_000
            big = await http.post("/api/stories", json={"premise": "a fox", "hero_picture": huge})
            # Only a new story may carry a picture: elsewhere the ordinary cap holds.
            plain = await http.post("/api/library", json={"stories": [], "extra": "x" * 20_000})
        kept = list(stack.config.media_dir.glob("*/hero.jpg"))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert "could not be read" in bad.json()["error"]["message"]
    assert "PNG, JPEG or WebP" in bad.json()["error"]["message"]
    assert link.status_code == 422 and "data:image" in link.json()["error"]["message"]
    assert big.status_code == 413, "past the hero cap the body is refused before it is read"
    assert plain.status_code == 413
    assert kept == []
