"""The page works under its Content-Security-Policy: not one violation from the form to
a page with its picture, the library and a shared story."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from services.devstack.procs import Stack
from tests.browser.reading import new_reader, wait_picture

pytestmark = pytest.mark.browser

WATCH = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def test_no_policy_violation_while_reading(browser_stack: Stack, browser: Browser) -> None:
    context, page, _ = new_reader(browser, phone=False, locale="en-US")
    context.add_init_script(WATCH)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        response = page.goto(f"{browser_stack.gateway_url}/")
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        page.get_by_test_id("premise-input").fill("A little fox who wants to learn to fly")
        page.get_by_test_id("start-button").click()
        wait_picture(page, 0)
        violations = page.evaluate("window.__violations")
    finally:
        context.close()
    assert violations == [] and console == [], (violations, console)
