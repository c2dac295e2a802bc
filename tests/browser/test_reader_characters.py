"""When the characters' picture fails, the reader is told, can ask for it again, and a
picture drawn from the words says so under it, never over it."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, expect

from services.devstack.procs import Stack
from tests.browser.reading import axe_check, new_reader, screenshot, settle

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("phone", [True, False], ids=["phone", "wide"])
def test_the_characters_can_be_drawn_again(browser: Browser, browser_stack: Stack, phone: bool) -> None:
    faults = f"{browser_stack.jimeng_url}/_fake/faults"
    context, page, _ = new_reader(browser, phone=phone, locale="zh-CN")
    try:
        page.goto(f"{browser_stack.gateway_url}/")
        expect(page.locator("body")).to_have_attribute("data-state", "home")
        # The sheet is the first picture asked for: refused twice (once softened), it fails.
        httpx.delete(faults)
        httpx.post(faults, json={"mode": "content_policy", "count": 2}).raise_for_status()
        page.get_by_test_id("premise-input").fill("小刺猬找朋友")
        page.get_by_test_id("start-button").click()

        again = page.get_by_test_id("sheet-again")
        expect(again).to_be_visible(timeout=60_000)
        expect(again).to_contain_text("主角们的画像没画成")
        # Page 0 is drawn from its words: the note is under the picture, not on it.
        expect(page.get_by_test_id("page-image")).to_be_visible(timeout=60_000)
        note = page.get_by_test_id("image-note")
        expect(note).to_be_visible()
        picture = page.get_by_test_id("page-picture").bounding_box()
        below = note.bounding_box()
        assert picture and below and below["y"] >= picture["y"] + picture["height"] - 1, (picture, below)
        settle(page)
        screenshot(page, f"{'phone' if phone else 'wide'}-characters-failed")
        axe_check(page, f"{'phone' if phone else 'wide'}-characters-failed")

        button = page.get_by_test_id("sheet-again-button")
        box = button.bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 44, box
        button.click()
        expect(again).to_have_count(0, timeout=30_000)
        if phone:
            return
        # The sheet arrives: "meet the characters" on page 0.
        expect(page.get_by_test_id("character-sheet")).to_be_visible(timeout=30_000)
    finally:
        httpx.delete(faults)
        context.close()
