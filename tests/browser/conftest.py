"""The reader's page in Debian's headless Chromium, against the whole system as processes.

One stack (two gateway replicas, both workers, fake Moonshot and fake jimeng on the real
broker) and one Chromium serve every browser test, and stop when the last one is done
(package scope: they do not linger while the rest of the suite runs). Its latencies are
chosen so a page visibly streams (~28 tokens/s, a page is ~130 tokens) and a picture
takes a few seconds to draw.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from services.devstack.procs import Stack
from tests.browser.reading import CHROMIUM_ARGS, STORY_PAGES, chromium_path
from tests.support.stack import running_stack


@pytest.fixture(scope="package")
def browser_stack(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        tmp_path_factory.mktemp("browser"),
        name="browser",
        story_pages=STORY_PAGES,
        moonshot_ttft=0.3,
        moonshot_tps=28.0,
        jimeng_seconds=3.5,
        gateways=2,
    ) as stack:
        yield stack


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    chromium_path()  # no chromium: fail with how to get it, before starting anything
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()
