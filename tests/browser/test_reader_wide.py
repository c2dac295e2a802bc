"""The same reader in a wide window (1280x800), in English: an open-book spread with the
picture beside the words, from the form (and a premise kindly refused) to a typed idea
gently set aside, the whole story with its downloads, and the library.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from services.devstack.procs import Stack
from tests.browser.reading import (
    CHOICES,
    DRAWING_WHILE_WRITING,
    SECRETS,
    STORY_PAGES,
    Traffic,
    api_story,
    axe_check,
    book_on,
    new_reader,
    reader_log,
    screenshot,
    settle,
    story_id_of,
    streamed_texts,
    token_of,
    wait_choices,
    wait_picture,
)

pytestmark = pytest.mark.browser

PREMISE = "A little fox who wants to learn to fly"
# Refused at the door (the word list): a kind hint with another idea, no story.
UNSUITABLE_PREMISE = "A bomb that blows up the river"
# Let through the door, but the model judges the premise unsuitable: the story's first
# page fails with a kind word and a way to start again.
MODEL_REFUSED_PREMISE = "A little bear who wants revenge on the moon"
# Let through the door but judged unsuitable by the model: the page goes on without it,
# and says so kindly.
SET_ASIDE_ACTION = "The fox finds a shiny weapon"


def indicator(n: int) -> str:
    return f"Page {n + 1} of {STORY_PAGES}"


def scroll_to_bottom(page: Page) -> None:
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_function(
        "() => Math.abs(window.scrollY + innerHeight - document.documentElement.scrollHeight) < 2"
    )


@dataclass
class Visit:
    context: BrowserContext
    page: Page
    traffic: Traffic
    story_id: str = ""
    token: str = ""
    done: set[str] = field(default_factory=set)

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"an earlier step did not pass: {', '.join(missing)}")


@pytest.fixture(scope="module")
def visit(browser: Browser, browser_stack: Stack) -> Iterator[Visit]:
    context, page, traffic = new_reader(browser, phone=False, locale="en-GB")
    try:
        yield Visit(context, page, traffic)
    finally:
        context.close()


def test_wide_01_new_story_in_english(visit: Visit, browser_stack: Stack) -> None:
    page = visit.page
    page.goto(f"{browser_stack.gateway_url}/")
    expect(page.locator("body")).to_have_attribute("data-state", "home")

    # Choosing English for the story also turns the page into English.
    page.locator(".seg-option", has=page.get_by_test_id("language-en")).click()
    expect(page.get_by_test_id("language-en")).to_be_checked()
    expect(page.locator("#home-title")).to_have_text("What story shall we tell today?")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # A premise that does not belong in a picture book: a gentle hint under the box, with
    # another idea to tap; no red error, no story.
    page.get_by_test_id("premise-input").fill(UNSUITABLE_PREMISE)
    with page.expect_response("**/api/stories") as answer:
        page.get_by_test_id("start-button").click()
    assert answer.value.status == 422
    assert answer.value.json()["error"]["code"] == "unsuitable_idea"
    hint = page.get_by_test_id("kind-hint")
    expect(hint).to_be_visible()
    message = hint.get_by_test_id("kind-hint-text").inner_text()
    assert message.startswith("That idea doesn't fit a story for children."), message
    idea = re.search(r"“(.+?)”", message)
    assert idea, message
    expect(page.get_by_test_id("form-error")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-state", "home")
    assert "#/story/" not in page.url
    hint.get_by_test_id("idea-chip").click()
    expect(page.get_by_test_id("premise-input")).to_have_value(idea.group(1))
    expect(page.get_by_test_id("kind-hint")).to_have_count(0)

    page.get_by_test_id("premise-input").fill(MODEL_REFUSED_PREMISE)
    page.get_by_test_id("start-button").click()
    expect(page).to_have_url(re.compile(r"#/story/[^/]+$"))
    refusal = page.get_by_test_id("page-refusal")
    expect(refusal).to_be_visible()
    expect(refusal).to_have_attribute("data-code", "unsuitable_idea")
    kind_words = refusal.get_by_test_id("kind-hint-text")
    expect(kind_words).to_contain_text("That idea doesn't fit a story for children.")
    expect(page.get_by_test_id("retry-button")).to_have_count(0)
    expect(page.locator("#page-problem [data-testid=error-message]")).to_have_count(0)
    settle(page)
    screenshot(page, "wide-01b-refused-premise")
    axe_check(page, "wide-01b-refused-premise")
    refusal.get_by_test_id("refusal-new-story").click()
    expect(page.locator("body")).to_have_attribute("data-state", "home")
    expect(page.get_by_test_id("premise-input")).to_have_value("")

    page.get_by_test_id("premise-input").fill(PREMISE)
    expect(page.get_by_test_id("premise-count")).to_have_text(f"{len(PREMISE)} / 500")
    page.get_by_test_id("age-plus").click()
    expect(page.get_by_test_id("age-input")).to_have_value("7")
    page.locator(".style-card", has_text="Paper-cut").click()
    expect(page.locator("[data-testid=style-option][value=paper-cut]")).to_be_checked()

    # Wide: the six styles sit on one row.
    tops = {round(b["y"]) for b in (c.bounding_box() for c in page.locator(".style-card").all()) if b}
    assert len(tops) == 1, f"style cards are on {len(tops)} rows"
    settle(page)
    screenshot(page, "wide-01-new-story", full_page=True)
    axe_check(page, "wide-01-new-story")

    page.get_by_test_id("start-button").click()
    expect(page).to_have_url(re.compile(r"#/story/[^/]+$"))
    visit.story_id = story_id_of(page)
    visit.token = token_of(page, visit.story_id)
    expect(page.get_by_test_id("story-byline")).to_have_text("For a 7-year-old · Paper-cut")
    story = api_story(browser_stack, visit.story_id, visit.token)
    assert (story["premise"], story["age"], story["language"], story["style"]) == (
        PREMISE,
        7,
        "en",
        "paper-cut",
    )
    visit.done.add("form")


def test_wide_02_writing_then_picture_beside_the_words(visit: Visit, browser_stack: Stack) -> None:
    visit.need("form")
    page = visit.page
    page.wait_for_function(DRAWING_WHILE_WRITING, arg=0)
    elapsed = page.locator("#picture [data-testid=image-elapsed]").inner_text()
    screenshot(page, "wide-02-writing")
    axe_check(page, "wide-02-writing")
    assert re.fullmatch(r"drawing for 0:0\d", elapsed), elapsed

    wait_choices(page, 0, indicator(0))
    streamed = streamed_texts(reader_log(page), 0)
    assert len(streamed) >= 3, f"the text did not stream: {streamed}"
    src = wait_picture(page, 0)
    assert src == api_story(browser_stack, visit.story_id, visit.token)["pages"][0]["image"]["url"]

    # The open book: picture on the left page, words on the right, side by side.
    pic = page.get_by_test_id("page-picture").bounding_box()
    words = page.get_by_test_id("page-text").bounding_box()
    assert pic and words
    assert pic["x"] + pic["width"] <= words["x"], (pic, words)
    assert pic["y"] < words["y"] + words["height"] and words["y"] < pic["y"] + pic["height"]
    # Scrolled down to the choices: the picture stays in view on its page.
    scroll_to_bottom(page)
    expect(page.locator(CHOICES).first).to_be_in_viewport()
    expect(page.get_by_test_id("page-picture")).to_be_in_viewport()
    settle(page)
    screenshot(page, "wide-03-picture")
    axe_check(page, "wide-03-picture")
    visit.done.add("picture")


def test_wide_03_to_the_end_whole_story_and_library(visit: Visit, browser_stack: Stack) -> None:
    visit.need("picture")
    page = visit.page
    for n in range(STORY_PAGES - 1):
        wait_choices(page, n, indicator(n))
        if n == 1:
            # A typed idea the model judges unsuitable: the page goes on gently without
            # it, and a kind note beside the words says so.
            page.get_by_test_id("action-input").fill(SET_ASIDE_ACTION)
            page.get_by_test_id("action-send").click()
            book_on(page, n + 1, indicator(n + 1))
            wait_choices(page, n + 1, indicator(n + 1))
            note = page.get_by_test_id("page-note")
            expect(note).to_be_visible()
            expect(note).to_contain_text("That idea didn't quite fit this story")
            expect(page.get_by_test_id("page-text")).not_to_contain_text("weapon")
            continue
        page.locator(CHOICES).nth(1).click()
        book_on(page, n + 1, indicator(n + 1))

    last = STORY_PAGES - 1
    end = page.get_by_test_id("story-end")
    expect(end).to_be_visible()
    expect(end).to_contain_text("The End!")
    expect(page.locator(CHOICES)).to_have_count(0)
    wait_picture(page, last)
    story = api_story(browser_stack, visit.story_id, visit.token)
    assert story["status"] == "ended"
    assert [p["chosen"]["choice"] for p in story["pages"][:-1]] == [1, None, 1]
    assert story["pages"][1]["chosen"]["action"] == SET_ASIDE_ACTION
    scroll_to_bottom(page)
    expect(end).to_be_in_viewport()
    expect(page.get_by_test_id("page-picture")).to_be_in_viewport()
    settle(page)
    screenshot(page, "wide-04-ending")
    axe_check(page, "wide-04-ending")

    page.get_by_test_id("whole-story-button").click()
    items = page.get_by_test_id("whole-story-page")
    expect(items).to_have_count(STORY_PAGES)
    for i, p in enumerate(story["pages"]):
        expect(items.nth(i).get_by_test_id("whole-story-text")).to_have_text(p["text"])
        expect(items.nth(i).get_by_test_id("page-image")).to_have_attribute("src", p["image"]["url"])
    expect(page.get_by_test_id("whole-story-end")).to_have_text("— The End —")
    # The note the reader saw stays with its page in the whole story.
    expect(items.nth(2).get_by_test_id("page-note")).to_contain_text("That idea didn't quite fit")
    expect(page.get_by_test_id("whole-character-sheet")).to_contain_text("Meet the characters")
    settle(page)
    screenshot(page, "wide-05-whole-story", full_page=True)
    axe_check(page, "wide-05-whole-story")

    # Download the book as an EPUB from the whole story.
    keep = page.locator("#whole-keep")
    keep.get_by_test_id("download-button").click()
    with page.expect_download() as download_info:
        keep.get_by_test_id("download-epub").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".epub"), download.suggested_filename
    saved = download.path()
    assert saved is not None
    with zipfile.ZipFile(Path(saved)) as book:
        assert book.read("mimetype") == b"application/epub+zip"

    page.get_by_test_id("nav-library").click()
    item = page.locator(f"[data-testid=library-item][data-story-id='{visit.story_id}']")
    expect(item).to_contain_text(story["title"])
    expect(item).to_contain_text("Finished")
    expect(item).to_contain_text(f"{STORY_PAGES} / {STORY_PAGES} pages")
    settle(page)
    screenshot(page, "wide-06-library")
    axe_check(page, "wide-06-library")
    item.get_by_test_id("library-open").click()
    book_on(page, 0, indicator(0))
    wait_picture(page, 0)

    for secret in SECRETS:
        assert not visit.traffic.leaks(secret), visit.traffic.leaks(secret)
    for url in visit.traffic.page_urls:
        assert visit.token not in url, url
