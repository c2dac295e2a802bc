"""A child's whole story on a phone (390x844), step by step, in the real page.

The tests run in order and share one browser tab: each one is a step of the same story
(form, streaming page, picture and character sheet, choice, a refused idea and an own
idea, reload, failed picture, ending, sharing and downloading, library, secrets). A step
whose predecessor failed is skipped, not failed again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from services.devstack.procs import Stack
from tests.browser.reading import (
    CHOICES,
    DRAWING_WHILE_WRITING,
    FAKE_SPEECH,
    SECRETS,
    STORY_PAGES,
    Traffic,
    api_story,
    axe_check,
    book_on,
    inject_image_fault,
    new_reader,
    reader_log,
    screenshot,
    settle,
    story_id_of,
    streamed_texts,
    target_sizes,
    token_of,
    wait_choices,
    wait_picture,
)

pytestmark = pytest.mark.browser

ACTION = "小兔子找到了一架会飞的梯子"
# Refused at the door by the word list: the reader gets a kind hint, the story does not move.
UNSUITABLE_ACTION = "用炸弹炸河"
# What the reader sees at one moment of a page being written.
MOMENT = """() => ({
  elapsed: document.querySelector('#picture [data-testid="image-elapsed"]')?.textContent,
  busy: document.getElementById('page-text').getAttribute('aria-busy'),
  choices: document.querySelectorAll('#page-after [data-testid="choice-button"]').length,
  writingNote: Boolean(document.querySelector('#page-after .writing-note')?.offsetParent),
})"""


@dataclass
class Journey:
    context: BrowserContext
    page: Page
    traffic: Traffic
    story_id: str = ""
    token: str = ""
    premise: str = ""
    done: set[str] = field(default_factory=set)

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"an earlier step did not pass: {', '.join(missing)}")

    def story(self, stack: Stack) -> dict[str, Any]:
        return api_story(stack, self.story_id, self.token)


@pytest.fixture(scope="module")
def journey(browser: Browser, browser_stack: Stack) -> Iterator[Journey]:
    context, page, traffic = new_reader(browser, phone=True)
    try:
        yield Journey(context, page, traffic)
    finally:
        context.close()


# ---------------------------------------------------------------------------- 1


def test_01_new_story_form(journey: Journey, browser_stack: Stack) -> None:
    page = journey.page
    page.goto(f"{browser_stack.gateway_url}/")
    expect(page.locator("body")).to_have_attribute("data-state", "home")
    expect(page.locator("#home-title")).to_have_text("今天想听什么故事？")

    # Tap a suggestion chip: it becomes the premise, the counter follows.
    chip = page.get_by_test_id("suggestion-chip").first
    premise = chip.inner_text().strip()
    assert premise
    chip.click()
    expect(page.get_by_test_id("premise-input")).to_have_value(premise)
    expect(page.get_by_test_id("premise-count")).to_have_text(f"{len(premise)} / 500 字")

    # Age: one year younger than the default 6; 中文; the crayon style.
    page.get_by_test_id("age-minus").click()
    expect(page.get_by_test_id("age-input")).to_have_value("5")
    page.locator(".seg-option", has=page.get_by_test_id("language-zh")).click()
    expect(page.get_by_test_id("language-zh")).to_be_checked()
    page.locator(".style-card", has_text="蜡笔").click()
    expect(page.locator("[data-testid=style-option][value=crayon]")).to_be_checked()
    expect(page.locator("[data-testid=style-option]:checked")).to_have_count(1)

    settle(page)
    screenshot(page, "phone-01-new-story", full_page=True)
    axe_check(page, "phone-01-new-story")

    page.get_by_test_id("start-button").click()
    expect(page).to_have_url(re.compile(r"#/story/[^/]+$"))
    journey.story_id = story_id_of(page)
    journey.token = token_of(page, journey.story_id)
    journey.premise = premise

    # While the outline is written the page says so, quoting the premise.
    planning = page.get_by_test_id("story-planning")
    expect(planning).to_be_visible()
    expect(planning).to_contain_text(premise)
    settle(page)
    screenshot(page, "phone-01b-planning")
    axe_check(page, "phone-01b-planning")

    expect(page.get_by_test_id("story-byline")).to_have_text("给 5 岁的小朋友 · 蜡笔")
    story = journey.story(browser_stack)
    assert (story["premise"], story["age"], story["language"], story["style"]) == (premise, 5, "zh", "crayon")
    journey.done.add("form")


# ---------------------------------------------------------------------------- 2


def test_02_text_streams_while_the_picture_is_drawn(journey: Journey, browser_stack: Stack) -> None:
    journey.need("form")
    page = journey.page

    # Mid-page: some text, still writing, and the picture being drawn with its clock.
    page.wait_for_function(DRAWING_WHILE_WRITING, arg=0)
    now = page.evaluate(MOMENT)
    screenshot(page, "phone-02-writing")
    axe_check(page, "phone-02-writing")
    assert re.fullmatch(r"已经画了 0:0\d", now["elapsed"]), now
    assert now["busy"] == "true" and now["choices"] == 0 and now["writingNote"], now

    choices = wait_choices(page, 0)
    final = page.get_by_test_id("page-text").inner_text()
    expect(page.get_by_test_id("story-title")).not_to_have_text("正在想一个好听的名字…")

    streamed = streamed_texts(reader_log(page), 0)
    assert len(streamed) >= 3, f"the text did not stream (values seen before the choices: {streamed})"
    for text in streamed:
        assert final.startswith(text), f"{text!r} is not how {final!r} begins"
    assert streamed[-1] == final or len(streamed[-1]) < len(final)

    story = journey.story(browser_stack)
    assert story["pages"][0]["text"] == final
    assert story["pages"][0]["choices"] == choices
    journey.done.add("streams")


# ---------------------------------------------------------------------------- 3


def test_03_the_picture_appears(journey: Journey, browser_stack: Stack) -> None:
    journey.need("streams")
    page = journey.page
    src = wait_picture(page, 0)
    assert re.fullmatch(rf"/media/{re.escape(journey.story_id)}/[^/]+", src), src
    expect(page.locator("#picture [data-testid=image-status]")).to_have_count(0)

    # The same picture the story says, served by the gateway.
    assert journey.story(browser_stack)["pages"][0]["image"]["url"] == src
    r = httpx.get(f"{browser_stack.gateway_url}{src}", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/")

    # The character sheet every picture is drawn from, as a small card on the first page.
    sheet = journey.story(browser_stack)["character_sheet"]
    assert sheet["status"] == "ready" and sheet["url"], sheet
    card = page.get_by_test_id("character-sheet")
    expect(card).to_be_visible()
    expect(card).to_contain_text("认识一下主角们")
    expect(card.get_by_test_id("character-sheet-image")).to_have_attribute("src", sheet["url"])
    page.wait_for_function(
        """() => { const i = document.querySelector('[data-testid="character-sheet-image"]');
                   return i && i.complete && i.naturalWidth > 0; }"""
    )
    toggle = card.locator("button")
    box = toggle.bounding_box()
    assert box and box["height"] >= 48 and box["height"] < 160, f"the sheet card is not small: {box}"
    toggle.click()  # tap: the sheet opens big, tap again: small
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")

    # Phone layout: the picture sits above the words.
    pic = page.get_by_test_id("page-picture").bounding_box()
    words = page.get_by_test_id("page-text").bounding_box()
    assert pic and words and pic["y"] + pic["height"] <= words["y"]
    assert pic["width"] > 300

    settle(page)
    screenshot(page, "phone-03-picture", full_page=True)
    axe_check(page, "phone-03-picture")
    journey.done.add("picture")


# ---------------------------------------------------------------------------- 4


def test_04_choose_then_own_idea(journey: Journey, browser_stack: Stack) -> None:
    journey.need("picture")
    page = journey.page

    # A big choice button: the next page starts and the reader is taken there.
    first = page.locator(CHOICES).first
    box = first.bounding_box()
    assert box and box["height"] >= 56 and box["width"] >= 300, f"choice buttons are not big: {box}"
    first.click()
    book_on(page, 1)
    assert journey.story(browser_stack)["pages"][0]["chosen"] == {"choice": 0, "action": None}

    # An idea that does not belong in a picture book: a kind hint with one of the page's
    # own choices to tap, next to the box; not a red error, and the story does not move on.
    wait_choices(page, 1)
    page.get_by_test_id("action-input").fill(UNSUITABLE_ACTION)
    with page.expect_response(re.compile(r"/api/stories/[^/]+/choices$")) as answer:
        page.get_by_test_id("action-send").click()
    assert answer.value.status == 422
    hint = page.get_by_test_id("action-hint")
    expect(hint).to_be_visible()
    message = hint.get_by_test_id("kind-hint-text").inner_text()
    assert "新点子" in message, message
    idea_match = re.search(r"「(.+?)」", message)
    assert idea_match, message
    assert idea_match.group(1) in journey.story(browser_stack)["pages"][1]["choices"], message
    chip = hint.get_by_test_id("idea-chip")
    expect(chip).to_have_text(re.compile(re.escape(idea_match.group(1))))
    expect(page.locator("[data-testid=error-message]:visible")).to_have_count(0)
    expect(page.get_by_test_id("toast")).to_be_hidden()
    chip_box = chip.bounding_box()
    assert chip_box and chip_box["height"] >= 44, f"the idea chip is too small to tap: {chip_box}"
    book_on(page, 1)
    expect(page.locator(CHOICES).first).to_be_enabled()
    story = journey.story(browser_stack)
    assert len(story["pages"]) == 2 and story["pages"][1]["chosen"] is None, story["pages"]
    hint.evaluate("(el) => el.scrollIntoView({block: 'center'})")
    settle(page)
    screenshot(page, "phone-09-kind-refusal")
    axe_check(page, "phone-09-kind-refusal")
    # Tapping the suggestion puts it in the box (and the hint has done its job).
    chip.click()
    expect(page.get_by_test_id("action-input")).to_have_value(idea_match.group(1))
    expect(page.get_by_test_id("action-hint")).to_have_count(0)

    # The reader's own idea on the next page.
    page.get_by_test_id("action-input").fill(ACTION)
    page.get_by_test_id("action-send").click()
    book_on(page, 2)
    # The fake Moonshot opens the page by having the hero say the idea out loud.
    expect(page.get_by_test_id("page-text")).to_contain_text(ACTION)
    chosen = journey.story(browser_stack)["pages"][1]["chosen"]
    assert chosen["action"] == ACTION, chosen
    journey.done.add("choose")


# ---------------------------------------------------------------------------- 5


def test_05_reload_mid_page(journey: Journey, browser_stack: Stack) -> None:
    journey.need("choose")
    page = journey.page
    title = page.get_by_test_id("story-title").inner_text()
    url = page.url
    status = page.get_by_test_id("book").get_attribute("data-page-status")
    assert status == "writing", "page 3 was already written before the reload: make the fake slower"

    page.reload()
    assert page.url == url
    expect(page.get_by_test_id("story-title")).to_have_text(title)
    book_on(page, 2)
    choices = wait_choices(page, 2)
    text = page.get_by_test_id("page-text").inner_text()

    # The reload landed mid-page, and the page went on streaming from there.
    log = reader_log(page)
    writing = [e for e in log if e["page"] == "2" and e["status"] == "writing" and e["text"]]
    assert writing, f"after the reload page 3 was never seen being written: {log[:5]}"
    after_reload = streamed_texts(log, 2)
    assert len(after_reload) >= 2, f"the text did not go on streaming after the reload: {after_reload}"
    print(f"after the reload page 3 showed {len(after_reload)} texts, from {len(after_reload[0])} characters")

    # Nothing doubled, nothing missing: same as the server, page by page.
    story = journey.story(browser_stack)
    assert [p["index"] for p in story["pages"]] == [0, 1, 2]
    assert [p["status"] for p in story["pages"]] == ["done"] * 3
    assert text == story["pages"][2]["text"] and text.count(ACTION) == 1, text
    assert choices == story["pages"][2]["choices"]
    dots = page.get_by_test_id("page-dot")
    expect(dots).to_have_count(STORY_PAGES)
    for i in range(3):
        expect(dots.nth(i)).to_have_class(re.compile(r"\bdot-done\b"))
    expect(dots.nth(3)).to_have_class(re.compile(r"\bdot-future\b"))

    # Leaf back through the earlier pages: each is the server's page.
    for i in (1, 0):
        page.get_by_test_id("prev-page").click()
        book_on(page, i)
        expect(page.get_by_test_id("page-text")).to_have_text(story["pages"][i]["text"])
        expect(page.get_by_test_id("chosen-note")).to_be_visible()
    for i in (1, 2):
        page.get_by_test_id("next-page").click()
        book_on(page, i)
    journey.done.add("reload")


# ---------------------------------------------------------------------------- 6


def test_06_failed_picture_and_redraw(journey: Journey, browser_stack: Stack) -> None:
    journey.need("reload")
    page = journey.page
    # Page 3's picture must be in before the fault is armed, or it would take the fault.
    wait_picture(page, 2)
    inject_image_fault(browser_stack, "no_credits", 1)

    page.locator(CHOICES).last.click()
    book_on(page, 3)
    status = page.locator("#picture [data-testid=image-status]")
    expect(status).to_have_attribute("data-status", "failed")
    expect(page.locator("#picture [data-testid=error-message]")).to_have_text(
        "这一页的插图没画出来，点这里重画"
    )
    expect(status).to_contain_text("画画服务的次数用完了，请告诉大人。")
    redraw = page.get_by_test_id("redraw-button")
    expect(redraw).to_be_visible()
    expect(page.get_by_test_id("story-end")).to_be_visible()  # the words go on without the picture
    image = journey.story(browser_stack)["pages"][3]["image"]
    assert image["status"] == "failed" and image["error"]["code"] == "image_no_credits", image

    page.evaluate("window.scrollTo(0, 0)")
    settle(page)
    screenshot(page, "phone-04-failed-picture")
    axe_check(page, "phone-04-failed-picture")

    redraw.click()
    src = wait_picture(page, 3)
    image = journey.story(browser_stack)["pages"][3]["image"]
    assert (image["status"], image["url"]) == ("ready", src), image
    journey.done.add("redraw")


# ---------------------------------------------------------------------------- 7


def test_07_the_end_share_download_and_the_whole_story(
    journey: Journey, browser: Browser, browser_stack: Stack
) -> None:
    journey.need("redraw")
    page = journey.page
    book_on(page, 3)
    end = page.get_by_test_id("story-end")
    expect(end).to_be_visible()
    expect(end).to_contain_text("故事讲完啦！")
    expect(page.locator("body")).to_have_attribute("data-story-status", "ended")
    expect(page.locator(CHOICES)).to_have_count(0)
    expect(page.get_by_test_id("action-input")).to_have_count(0)
    expect(page.locator("[data-testid=page-dot].dot-done")).to_have_count(STORY_PAGES)

    story = journey.story(browser_stack)
    assert story["status"] == "ended"
    assert len(story["pages"]) == STORY_PAGES and story["pages"][-1]["choices"] == []
    expect(page.get_by_test_id("page-text")).to_have_text(story["pages"][-1]["text"])
    expect(end.get_by_test_id("share-button")).to_be_visible()
    expect(end.get_by_test_id("download-button")).to_be_visible()
    settle(page)
    screenshot(page, "phone-05-ending", full_page=True)
    axe_check(page, "phone-05-ending")
    assert target_sizes(page, "main button:not([disabled]), main a.btn") == [], (
        "phone-05-ending: a target under 44 px"
    )

    # Share with the family: a read-only link, shown in full, to copy.
    journey.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=browser_stack.gateway_url)
    end.get_by_test_id("share-button").click()
    panel = end.get_by_test_id("share-panel")
    expect(panel).to_be_visible()
    link = panel.get_by_test_id("share-link")
    expect(link).to_have_text(re.compile(rf"^{re.escape(browser_stack.gateway_url)}/read/[A-Za-z0-9_-]+$"))
    url = link.inner_text().strip()
    assert journey.token not in url
    panel.get_by_test_id("share-copy").click()
    expect(panel.get_by_test_id("share-copied")).to_have_text("已复制！")
    assert page.evaluate("navigator.clipboard.readText()") == url
    panel.evaluate("(el) => el.scrollIntoView({block: 'center'})")
    settle(page)
    screenshot(page, "phone-08-share")
    axe_check(page, "phone-08-share")

    # The link opens on another device: the finished story, nothing to choose, no token.
    other = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    other.add_init_script(FAKE_SPEECH)
    try:
        shared = other.new_page()
        response = shared.goto(url)
        assert response is not None and response.status == 200
        expect(shared.locator("h1")).to_have_text(story["title"])
        body = shared.locator("body")
        for p in story["pages"]:
            for line in p["text"].split("\n"):
                if line.strip():
                    expect(body).to_contain_text(line.strip())
        # Nothing to choose or type; read-aloud, and a way to make one's own story.
        expect(shared.locator("input, textarea, form")).to_have_count(0)
        expect(shared.locator("button")).to_have_count(1)
        expect(shared.locator("#make-own")).to_have_attribute("href", "/")
        axe_check(shared, "phone-shared-page")
        # Read-aloud on the shared page marks the sentence being read.
        shared.locator("#read-aloud").click()
        expect(shared.locator(".page .text .sentence.reading")).to_have_count(1)
        expect(shared.locator("#read-aloud")).to_have_attribute("aria-pressed", "true")
        shared.locator("#read-aloud").click()
        expect(shared.locator(".reading")).to_have_count(0)
        exported = httpx.get(url.replace("/read/", "/api/shared/") + "/export/html", timeout=30)
        assert exported.status_code == 200
        shared.set_content(exported.text)
        expect(shared.locator("h1")).to_have_text(story["title"])
        axe_check(shared, "phone-export-html")
        shared.goto(url)
        for p in story["pages"]:
            for choice in p["choices"]:
                assert choice not in shared.content(), f"a choice is on the shared page: {choice}"
        html = shared.content()
        assert journey.token not in html and journey.token not in shared.url
    finally:
        other.close()

    # Download the book as a PDF: fetched with the token, saved as a file.
    end.get_by_test_id("download-button").click()
    options = end.get_by_test_id("download-options")
    expect(options).to_be_visible()
    for fmt in ("pdf", "epub", "html"):
        expect(options.get_by_test_id(f"download-{fmt}")).to_be_visible()
    with page.expect_download() as download_info:
        options.get_by_test_id("download-pdf").click()
    download = download_info.value
    assert download.failure() is None, download.failure()
    assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
    saved = download.path()
    assert saved is not None
    assert Path(saved).read_bytes()[:5] == b"%PDF-"
    expect(options.get_by_test_id("download-done")).to_contain_text(download.suggested_filename)
    expect(options.get_by_test_id("download-pdf")).to_be_enabled()

    page.get_by_test_id("end-whole-story").click()
    expect(page).to_have_url(re.compile(rf"#/story/{re.escape(journey.story_id)}/all$"))
    expect(page.get_by_test_id("whole-story")).to_be_visible()
    items = page.get_by_test_id("whole-story-page")
    expect(items).to_have_count(len(story["pages"]))
    for i, p in enumerate(story["pages"]):
        item = items.nth(i)
        expect(item.get_by_test_id("whole-story-text")).to_have_text(p["text"])
        expect(item.get_by_test_id("page-image")).to_have_attribute("src", p["image"]["url"])
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid=whole-story-page] img')]
              .every((i) => i.complete && i.naturalWidth > 0)"""
    )
    expect(page.get_by_test_id("whole-story-end")).to_have_text("— 完 —")
    expect(page.locator("#whole-title")).to_have_text(story["title"])
    # The cover: the characters; and the same share link and downloads.
    expect(page.get_by_test_id("whole-character-sheet").locator("img")).to_have_attribute(
        "src", story["character_sheet"]["url"]
    )
    keep = page.locator("#whole-keep")
    expect(keep.get_by_test_id("share-button")).to_be_visible()
    expect(keep.get_by_test_id("download-button")).to_be_visible()
    settle(page)
    screenshot(page, "phone-06-whole-story", full_page=True)
    axe_check(page, "phone-06-whole-story")
    assert target_sizes(page, "main button:not([disabled]), main a.btn") == [], (
        "phone-06-whole-story: a target under 44 px"
    )
    journey.done.add("end")


# ---------------------------------------------------------------------------- 8


def test_08_library_keeps_and_reopens_the_story(journey: Journey, browser_stack: Stack) -> None:
    journey.need("end")
    page = journey.page
    story = journey.story(browser_stack)
    # What this device remembers is out of date (as after a crash, or on a second tab):
    # the library asks the server and puts it right.
    page.evaluate(
        """(id) => {
          const lib = JSON.parse(localStorage.getItem('storybook.library.v1'));
          const entry = lib.find((s) => s.id === id);
          Object.assign(entry, { title: null, status: 'in_progress', pages: 1, cover: null });
          localStorage.setItem('storybook.library.v1', JSON.stringify(lib));
        }""",
        journey.story_id,
    )
    with page.expect_response("**/api/library") as answer:
        page.get_by_test_id("nav-library").click()
    assert answer.value.status == 200
    summaries = answer.value.json()["stories"]
    assert [s["story_id"] for s in summaries] == [journey.story_id], summaries
    expect(page.locator("body")).to_have_attribute("data-state", "library")
    expect(page.locator("body")).to_have_attribute("data-library-sync", "done")
    item = page.locator(f"[data-testid=library-item][data-story-id='{journey.story_id}']")
    expect(item).to_be_visible()
    expect(item).to_have_attribute("data-status", "ended")
    expect(item).to_contain_text(story["title"])
    expect(item).to_contain_text("讲完啦")
    expect(item).to_contain_text(f"{STORY_PAGES} / {STORY_PAGES} 页")
    expect(item.locator(".lib-cover img")).to_have_attribute("src", re.compile(r"^/media/"))
    settle(page)
    screenshot(page, "phone-07-library")
    axe_check(page, "phone-07-library")
    assert target_sizes(page, "main button:not([disabled]), main a.btn") == [], (
        "phone-07-library: a target under 44 px"
    )

    item.get_by_test_id("library-open").click()
    expect(page).to_have_url(re.compile(rf"#/story/{re.escape(journey.story_id)}$"))
    expect(page.get_by_test_id("story-title")).to_have_text(story["title"])
    book_on(page, 0)  # a finished story opens at its first page
    expect(page.get_by_test_id("page-text")).to_have_text(story["pages"][0]["text"])
    wait_picture(page, 0)

    # And the home page offers it to read on.
    page.get_by_test_id("nav-new").click()
    expect(page.locator(f"#recent-list [data-story-id='{journey.story_id}']")).to_be_visible()
    journey.done.add("library")


# ---------------------------------------------------------------------------- 9

# A page written again (its writer crashed or retried) sends page.text.reset; the reader
# applies the page's events as they come. Played here through the page's own module.
RESET_PLAY = """async () => {
  const m = await import('/static/story.js');
  const story = m.fromSnapshot({ story_id: 's', pages: [{ index: 0, status: 'writing', text: '' }] });
  const seen = [];
  const play = (ev) => { m.applyEvent(story, { page: 0, ...ev }); seen.push(story.pages[0].text); };
  play({ type: 'page.text.delta', attempt: 1, offset: 0, delta: '小兔子看见' });
  play({ type: 'page.text.delta', attempt: 1, offset: 5, delta: '了月亮' });
  play({ type: 'page.text.reset', attempt: 1 });
  play({ type: 'page.text.delta', attempt: 1, offset: 8, delta: '（旧的）' });
  play({ type: 'page.text.delta', attempt: 1, offset: 0, delta: '月亮' });
  play({ type: 'page.text.delta', attempt: 1, offset: 2, delta: '升起来了' });
  play({ type: 'page.text.delta', attempt: 2, offset: 3, delta: '半句' });
  play({ type: 'page.text.delta', attempt: 2, offset: 0, delta: '重新开始' });
  play({ type: 'page.text.delta', attempt: 1, offset: 0, delta: '迟到的旧字' });
  play({ type: 'page.text.done', seq: 3, text: '重新开始。', choices: ['a', 'b'], note: '换了一个方向。' });
  play({ type: 'page.text.reset', attempt: 3 });
  return { seen, note: story.pages[0].note };
}"""


def test_09_a_page_written_again_is_never_glued(journey: Journey) -> None:
    journey.need("form")
    result = journey.page.evaluate(RESET_PLAY)
    assert result["seen"] == [
        "小兔子看见",
        "小兔子看见了月亮",
        "",  # reset: the partial text goes
        "",  # a late word of the old text, past the start: not glued on
        "月亮",  # rebuilt from offset 0
        "月亮升起来了",
        "",  # a newer attempt, joined mid-way: nothing of the old one stays
        "重新开始",
        "重新开始",  # a word of an older attempt changes nothing
        "重新开始。",
        "重新开始。",  # a finished page stays finished
    ], result
    assert result["note"] == "换了一个方向。"


# ---------------------------------------------------------------------------- 10


def test_10_no_secret_reaches_the_page(journey: Journey) -> None:
    journey.need("form")
    page = journey.page
    traffic = journey.traffic
    # We did look at everything: the page, its scripts, the API, pictures, socket frames.
    urls = " ".join(traffic.bodies)
    for part in ("/static/app.js", "/static/api.js", "/static/styles.css", "/api/stories", "/media/"):
        assert part in urls, f"no response for {part} was seen"
    assert traffic.ws_frames, "no WebSocket frame was seen"
    assert not traffic.unread, f"responses whose body could not be read: {traffic.unread}"

    for secret in SECRETS:
        assert not traffic.leaks(secret), f"{secret} reached the browser: {traffic.leaks(secret)}"
        assert secret not in page.content()
        assert secret not in page.evaluate("JSON.stringify(localStorage)")

    # The token stays in localStorage: never in the address bar, never in an HTTP URL.
    # (The story socket carries it as ?token=, as the contract says.)
    token = journey.token
    assert token and traffic.page_urls
    for url in [*traffic.page_urls, page.url]:
        assert token not in url, f"the token is in the address bar: {url}"
    for url in traffic.request_urls:
        if not url.startswith(("ws:", "wss:")):
            assert token not in url, f"the token is in a request URL: {url}"
    assert token not in page.content()
    assert all(u.startswith("ws://") for u in traffic.ws_urls)
