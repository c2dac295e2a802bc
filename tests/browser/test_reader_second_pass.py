"""What a parent met on the second pass, on a phone (390x844) and a laptop (1280x800):
the page speaks the browser's language, the header fits from 320 px, a long premise is
said not cut, the child's own hero (a name and a drawing), choices in reach when a page
is done, and read-aloud that marks the sentence being read. axe-core on every screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect

from services.devstack.procs import Stack
from tests.browser.reading import (
    CHOICES,
    FAKE_SPEECH,
    axe_check,
    new_reader,
    screenshot,
    settle,
    target_sizes,
)
from tests.support.stack import ARTIFACTS

pytestmark = pytest.mark.browser

# In-page clock of what the reader sees: the page done, the cue shown, the choices in view.
REACH_CLOCK = """
(() => {
  window.__reach = {};
  const stamp = (k) => { if (!(k in window.__reach)) window.__reach[k] = performance.now(); };
  new MutationObserver(() => {
    const book = document.getElementById('book');
    if (book && book.dataset.pageStatus === 'done' && book.dataset.page === '0') stamp('done');
    const cue = document.getElementById('to-choices');
    if ('done' in window.__reach && cue && !cue.hidden) stamp('cue');
    if ('done' in window.__reach && document.body.dataset.choicesInView === 'true') stamp('inView');
  }).observe(document, {
    attributes: true, subtree: true, attributeFilter: ['data-page-status', 'hidden', 'data-choices-in-view'],
  });
})();
"""


def _drawing(path: Path) -> Path:
    """A child's drawing: an orange fox-ish blob with ears, on transparent paper."""
    img = Image.new("RGBA", (1400, 1000), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((450, 350, 950, 850), fill=(240, 130, 40, 255), outline=(60, 40, 20, 255), width=12)
    d.polygon([(500, 420), (560, 200), (640, 380)], fill=(240, 130, 40, 255))
    d.polygon([(800, 380), (880, 200), (920, 420)], fill=(240, 130, 40, 255))
    d.ellipse((590, 520, 630, 560), fill=(20, 20, 20, 255))
    d.ellipse((770, 520, 810, 560), fill=(20, 20, 20, 255))
    img.save(path, "PNG")
    return path


def _bars(page: Page) -> tuple[float, float]:
    """Where the sticky top bar ends and the sticky page bar starts (CSS px, viewport)."""
    top = page.evaluate("document.querySelector('.topbar').getBoundingClientRect().bottom")
    bottom = page.evaluate(
        "(() => { const n = document.getElementById('page-nav');"
        " return n.hidden ? innerHeight : n.getBoundingClientRect().top; })()"
    )
    return float(top), float(bottom)


def _in_reach(page: Page, selector: str) -> bool:
    """The element is whole on screen, between the top bar and the page bar."""
    top, bottom = _bars(page)
    box = page.evaluate(
        f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
        " return [r.top, r.bottom]; })()"
    )
    return bool(box[0] >= top - 1 and box[1] <= bottom + 1)


# ---------------------------------------------------------------------------- language


@pytest.mark.parametrize(
    ("locale", "lang", "title"),
    [
        ("en-US", "en", "What story shall we tell today?"),
        ("zh-CN", "zh-CN", "今天想听什么故事？"),
        ("fr-FR", "en", "What story shall we tell today?"),
    ],
)
def test_a_first_visit_speaks_the_browser_language(
    browser: Browser, browser_stack: Stack, locale: str, lang: str, title: str
) -> None:
    context, page, _ = new_reader(browser, phone=True, locale=locale)
    try:
        page.goto(f"{browser_stack.gateway_url}/")
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.locator("#home-title")).to_have_text(title)
        # The parent's choice wins from then on, over the browser's.
        page.get_by_test_id("ui-lang-toggle").click()
        other = "zh-CN" if lang == "en" else "en"
        expect(page.locator("html")).to_have_attribute("lang", other)
        page.reload()
        expect(page.locator("html")).to_have_attribute("lang", other)
    finally:
        context.close()


# ---------------------------------------------------------------------------- header


@pytest.mark.parametrize("width", [320, 360, 390, 1280])
def test_the_header_fits_from_320px_in_both_languages(
    browser: Browser, browser_stack: Stack, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{browser_stack.gateway_url}/")
        for lang in ("en", "zh-CN"):
            expect(page.locator("html")).to_have_attribute("lang", lang)
            fit = page.evaluate(
                """() => {
                  const brand = document.querySelector('.brand').getBoundingClientRect();
                  const nav = document.querySelector('.topnav').getBoundingClientRect();
                  const name = document.querySelector('.brand-name');
                  const shown = getComputedStyle(name).display !== 'none';
                  return {
                    overlap: brand.right > nav.left + 0.5,
                    cut: shown && name.scrollWidth > name.clientWidth + 1,
                    wider: document.documentElement.scrollWidth > innerWidth,
                    navOut: nav.right > innerWidth + 0.5,
                  };
                }"""
            )
            assert fit == {"overlap": False, "cut": False, "wider": False, "navOut": False}, (
                width,
                lang,
                fit,
            )
            small = target_sizes(page, ".topbar a, .topbar button")
            assert small == [], (width, lang, small)
            if width == 320:
                screenshot(page, f"header-320-{lang}")
            page.get_by_test_id("ui-lang-toggle").click()
    finally:
        context.close()


# ---------------------------------------------------------------------------- premise


def test_a_long_premise_is_said_not_cut(browser: Browser, browser_stack: Stack) -> None:
    context, page, _ = new_reader(browser, phone=True, locale="zh-CN")
    try:
        page.goto(f"{browser_stack.gateway_url}/")
        long = "一只想去月亮上的小兔子，" * 50  # 600 characters
        page.get_by_test_id("premise-input").fill(long)
        expect(page.get_by_test_id("premise-input")).to_have_value(long)  # nothing cut
        error = page.get_by_test_id("premise-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("600")
        expect(error).to_contain_text("500")
        expect(page.get_by_test_id("premise-count")).to_have_text("600 / 500 字")
        axe_check(page, "phone-premise-too-long")
        page.get_by_test_id("start-button").click()
        expect(page.locator("body")).to_have_attribute("data-state", "home")
        page.get_by_test_id("premise-input").fill(long[:480])
        expect(error).to_be_hidden()
    finally:
        context.close()


# ---------------------------------------------------------------------------- hero, choices, read-aloud


@pytest.mark.parametrize("phone", [True, False], ids=["phone", "wide"])
def test_the_childs_hero_choices_in_reach_and_read_aloud(
    browser: Browser, browser_stack: Stack, tmp_path: Path, phone: bool
) -> None:
    kind = "phone" if phone else "wide"
    context, page, _ = new_reader(browser, phone=phone, locale="en-US")
    context.add_init_script(FAKE_SPEECH)
    context.add_init_script(REACH_CLOCK)
    try:
        page.goto(f"{browser_stack.gateway_url}/")
        page.get_by_test_id("premise-input").fill("A little fox who wants to see the sea")
        page.get_by_test_id("hero-name").fill("Pip")
        page.get_by_test_id("hero-file").set_input_files(str(_drawing(tmp_path / "pip.png")))
        preview = page.get_by_test_id("hero-preview")
        expect(preview).to_be_visible()
        expect(preview.locator("img")).to_have_attribute("src", re.compile(r"^data:image/jpeg;base64,"))
        settle(page)
        screenshot(page, f"{kind}-hero-form", full_page=True)
        axe_check(page, f"{kind}-hero-form")
        assert target_sizes(page, "#story-form button, #story-form .btn") == []

        with page.expect_response("**/api/stories") as created:
            page.get_by_test_id("start-button").click()
        assert created.value.status == 201
        expect(page.get_by_test_id("story-title")).to_contain_text("Pip", timeout=60_000)

        # The page is written: from then on, its choices are in reach.
        expect(page.get_by_test_id("book")).to_have_attribute("data-page-status", "done", timeout=60_000)
        first = page.locator(CHOICES).first
        cue = page.get_by_test_id("to-choices")
        page.wait_for_function(
            "() => document.body.dataset.choicesInView === 'true'"
            " || !document.getElementById('to-choices').hidden"
        )
        shown = _in_reach(page, f"{CHOICES}")
        if not shown:
            expect(cue).to_be_visible()
            cue_box = cue.get_by_test_id("to-choices-button").bounding_box()
            _, bar_top = _bars(page)
            assert cue_box and cue_box["y"] + cue_box["height"] <= bar_top + 1, (
                "the cue sits above the page bar"
            )
            settle(page)
            screenshot(page, f"{kind}-choices-cue")
            axe_check(page, f"{kind}-choices-cue")
            cue.get_by_test_id("to-choices-button").click()
        if not shown:
            expect(first).to_be_focused()
        page.wait_for_function("() => document.body.dataset.choicesInView === 'true'")
        clock = page.evaluate("window.__reach")
        cue_ms = clock.get("cue", clock["done"]) - clock["done"]
        page.wait_for_timeout(400)  # the smooth scroll comes to rest
        for i in range(page.locator(CHOICES).count()):
            assert _in_reach(page, f"{CHOICES}:nth-child({i + 1})"), f"choice {i + 1} is under a bar"
        expect(cue).to_be_hidden()
        settle(page)
        screenshot(page, f"{kind}-choices-in-reach")
        axe_check(page, f"{kind}-choices-in-reach")
        (ARTIFACTS / f"choices-timing-{kind}.txt").write_text(
            f"page done -> cue pointing to the choices: {cue_ms:.0f} ms; "
            f"-> first choice whole on screen: {clock['inView'] - clock['done']:.0f} ms "
            f"(cue tapped: {not shown})\n"
        )
        small = target_sizes(page, "#view-reader button, #view-reader a.btn")
        assert small == [], small

        # The characters' picture is drawn from the drawing: "meet the characters".
        sheet = page.get_by_test_id("character-sheet")
        expect(sheet).to_be_visible(timeout=60_000)
        sheet.locator(".sheet-toggle").click()
        expect(sheet).to_have_class(re.compile(r"\bopen\b"))
        sheet.scroll_into_view_if_needed()
        settle(page)
        screenshot(page, f"{kind}-hero-characters-from-the-drawing")
        axe_check(page, f"{kind}-hero-characters")
        sheet.locator(".sheet-toggle").click()

        # Read-aloud: sentence by sentence, each marked while it is read, then the choices.
        page.evaluate("window.scrollTo(0, 0)")
        page.get_by_test_id("read-aloud").click()
        reading = page.locator("#page-text .sentence.reading")
        expect(reading).to_have_count(1)
        sentences = page.locator("#page-text .sentence")
        assert sentences.count() >= 2
        text = page.get_by_test_id("page-text").inner_text()
        assert "".join(sentences.all_inner_texts()).replace("\n", "") == text.replace("\n", "")
        settle(page)
        screenshot(page, f"{kind}-read-aloud-sentence")
        axe_check(page, f"{kind}-read-aloud-sentence")
        expect(page.locator(f"{CHOICES}.reading")).to_have_count(1, timeout=30_000)
        spoken = page.evaluate("window.__spoken")
        assert spoken[-1].startswith("1. ") or any(s.startswith("1. ") for s in spoken), spoken
        expect(page.get_by_test_id("read-aloud")).to_have_attribute("aria-pressed", "false", timeout=30_000)
        expect(page.locator(".reading")).to_have_count(0)
    finally:
        context.close()
