"""While Moonshot is rate-limited, the reader sees one calm sentence counting down to
the next try, not a silent spinner, also after a reload; then the story goes on."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, expect

from services.devstack.procs import Stack
from tests.browser.reading import axe_check, new_reader, screenshot, settle

pytestmark = pytest.mark.browser

BUSY = re.compile(r"^故事作家有点忙，(马上再试（\d+ 秒）|正在再试…)$")


def test_the_reader_sees_the_storyteller_is_busy_then_the_story(
    browser: Browser, browser_stack: Stack
) -> None:
    faults = f"{browser_stack.moonshot_url.removesuffix('/v1')}/_fake/faults"
    context, page, _ = new_reader(browser, phone=False, locale="zh-CN")
    try:
        page.goto(f"{browser_stack.gateway_url}/")
        expect(page.locator("body")).to_have_attribute("data-state", "home")
        # Every call for the next 10 s: 429 "please try again after 1 seconds".
        httpx.post(faults, json={"mode": "rate_limit", "lasting": 10, "seconds": 1}).raise_for_status()
        page.get_by_test_id("premise-input").fill("一只想去月亮上的小兔子")
        page.get_by_test_id("start-button").click()

        waiting = page.get_by_test_id("page-waiting")
        expect(waiting).to_be_visible(timeout=10_000)
        expect(waiting).to_have_attribute("data-waiting-reason", "llm_busy")
        expect(waiting.locator(".waiting-note-text")).to_have_text(BUSY)
        settle(page)
        screenshot(page, "wide-waiting-storyteller-busy")
        axe_check(page, "wide-waiting-storyteller-busy")

        # A reader who reloads while it waits is told too (from the story's state).
        page.reload()
        again = page.get_by_test_id("page-waiting").locator(".waiting-note-text")
        expect(again).to_have_text(BUSY, timeout=10_000)

        # The rate limit passes: the sentence goes, the page is written.
        expect(page.get_by_test_id("page-text")).not_to_be_empty(timeout=40_000)
        expect(page.get_by_test_id("page-waiting")).to_have_count(0)
    finally:
        httpx.delete(faults)
        context.close()
