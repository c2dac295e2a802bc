"""A library to return to: this device's stories, read-only sharing, what stories cost."""

from __future__ import annotations

import httpx
import pytest

from services.devstack.procs import Stack
from tests.support.reader import AutoReader
from tests.support.stack import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


async def test_library_share_and_costs(stack: Stack) -> None:
    finished = AutoReader([stack.gateway_url], premise="小象学画画", age=5)
    await finished.play(limit=120)
    mine = finished.reader
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        other = (await http.post("/api/stories", json={"premise": "another reader's story"})).json()

        # The library lists only the stories whose token this device holds.
        r = await http.post(
            "/api/library",
            json={
                "stories": [
                    {"story_id": mine.story_id, "token": mine.token},
                    {"story_id": other["story_id"], "token": "not-the-token"},
                    {"story_id": "unknown", "token": "x"},
                ]
            },
        )
        assert r.status_code == 200
        (entry,) = r.json()["stories"]
        assert entry["story_id"] == mine.story_id and entry["status"] == "ended" and entry["pages"] == 4
        assert entry["cover_url"].startswith("/media/")

        # Sharing: only finished stories; the link shows the story and nothing else.
        assert (
            await http.post(
                f"/api/stories/{other['story_id']}/share",
                headers={"Authorization": f"Bearer {other['token']}"},
            )
        ).status_code == 409
        r = await http.post(f"/api/stories/{mine.story_id}/share", headers=mine.auth)
        assert r.status_code == 201
        link = r.json()
        again = (await http.post(f"/api/stories/{mine.story_id}/share", headers=mine.auth)).json()
        assert again["share_id"] == link["share_id"], "one link per story"
        shared = (await http.get(f"/api/shared/{link['share_id']}")).json()
        text = str(shared)
        assert len(shared["pages"]) == 4 and all(p["text"] for p in shared["pages"])
        assert "choices" not in text and mine.token not in text and "premise" not in text
        assert (await http.get("/api/shared/not-a-link")).status_code == 404

        # The link opens as a page; the story downloads as a picture book.
        page = await http.get(link["url"])
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert shared["pages"][0]["text"][:10] in page.text and mine.token not in page.text
        pdf = await http.get(f"/api/stories/{mine.story_id}/export/pdf", headers=mine.auth)
        assert pdf.content.startswith(b"%PDF") and "attachment" in pdf.headers["content-disposition"]
        epub = await http.get(f"/api/shared/{link['share_id']}/export/epub")
        assert epub.content.startswith(b"PK") and epub.headers["content-type"] == "application/epub+zip"
        assert (await http.get(f"/api/stories/{mine.story_id}/export/pdf")).status_code == 401
        assert (
            await http.get(f"/api/stories/{mine.story_id}/export/doc", headers=mine.auth)
        ).status_code == 404

        # Costs: recorded per story, totals per day for the operator only.
        story = (await http.get(f"/api/stories/{mine.story_id}", headers=mine.auth)).json()
        usage = story["usage"]
        assert usage["tokens_in"] > 0 and usage["tokens_out"] > 0
        assert usage["llm_calls"] >= 5 and usage["pictures"] >= 5 and usage["image_calls"] >= 5
        assert (await http.get("/api/admin/usage")).status_code == 403
        r = await http.get("/api/admin/usage", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 200
        totals = r.json()["totals"]
        assert totals["stories"] >= 2 and totals["tokens_out"] >= usage["tokens_out"]
