"""What the browser tests use to drive and watch the reader's page."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Error,
    Page,
    Response,
    WebSocket,
    expect,
)

from services.devstack.procs import Stack
from tests.support.stack import ARTIFACTS

SCREENSHOTS = ARTIFACTS / "screenshots"
STORY_PAGES = 4
# Generous: a page is ~5 s of writing, a picture ~3.5 s of drawing; CI machines are slow.
TIMEOUT_MS = 45_000
# Playwright's `expect` has its own default (5 s), apart from the context's.
expect.set_options(timeout=TIMEOUT_MS)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# What must never reach the browser: the upstream credentials the services hold.
SECRETS = ("sk-offline-fake-key", "offline-fake-session")

# Installed in every document before the page's own scripts: a log of what the reader
# saw, one entry per DOM change of the page text, the page's status or what follows the
# text (choices). It lets a test tell "streamed" from "appeared at once" after the fact.
RECORDER = """
(() => {
  const log = [];
  window.__storybookLog = log;
  const snap = (kind) => {
    const book = document.getElementById('book');
    const text = document.getElementById('page-text');
    if (!book || !text || book.hidden) return;
    const entry = {
      kind,
      page: book.dataset.page ?? null,
      status: book.dataset.pageStatus ?? null,
      image: book.dataset.imageStatus ?? null,
      text: text.textContent,
      choices: document.querySelectorAll('#page-after [data-testid="choice-button"]').length,
      t: Math.round(performance.now()),
    };
    const last = log[log.length - 1];
    if (last && ['page', 'status', 'image', 'text', 'choices'].every((k) => last[k] === entry[k])) return;
    log.push(entry);
  };
  const start = () => {
    const mo = new MutationObserver(() => snap('change'));
    mo.observe(document.getElementById('page-text'), { childList: true, characterData: true, subtree: true });
    mo.observe(document.getElementById('page-after'), { childList: true, subtree: true });
    mo.observe(document.getElementById('book'), {
      attributes: true,
      attributeFilter: ['hidden', 'data-page', 'data-page-status', 'data-image-status'],
    });
    snap('load');
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
"""


# A speech engine that speaks nothing, in order, ~0.3 s an utterance: what the page sees of
# a real one (onstart, onend). Headless Chromium has no voices to speak with.
FAKE_SPEECH = """
(() => {
  const queue = [];
  let speaking = null;
  window.__spoken = [];
  const next = () => {
    speaking = queue.shift() || null;
    if (!speaking) return;
    const u = speaking;
    window.__spoken.push(u.text);
    setTimeout(() => { if (speaking === u) { u.onstart && u.onstart(); } }, 10);
    setTimeout(() => { if (speaking === u) { u.onend && u.onend(); next(); } }, 300);
  };
  const synth = {
    speak(u) { queue.push(u); if (!speaking) next(); },
    cancel() { queue.length = 0; speaking = null; },
    getVoices() { return []; },
    addEventListener() {},
  };
  // Read-only attributes of Window: replaced, not assigned.
  Object.defineProperty(window, 'speechSynthesis', { value: synth, configurable: true });
  Object.defineProperty(window, 'SpeechSynthesisUtterance', {
    value: function (text) { this.text = text; }, configurable: true,
  });
})();
"""


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed, so the browser tests cannot run: "
            "`.ci/run` installs it (or: sudo apt-get install chromium). "
            "Do not use `playwright install`.",
            pytrace=False,
        )
    return path


def settle(page: Page) -> None:
    """Fonts loaded, pictures decoded, finite animations (view/page fade-in) over."""
    page.wait_for_function(
        """() => document.fonts.status === 'loaded'
          && [...document.images].every((i) => !i.src || (i.complete && i.naturalWidth > 0)
                                          || i.closest('[hidden]'))
          && document.getAnimations().every((a) => {
               const t = a.effect && a.effect.getComputedTiming();
               return !t || t.iterations === Infinity || a.playState !== 'running';
             })""",
        timeout=TIMEOUT_MS,
    )


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not full_page:
        page.screenshot(path=str(path))
    else:
        # A "full page" capture of Chromium paints sticky bars (the top bar, the page
        # turner) where they were on screen, i.e. in the middle of the picture. A window
        # as tall as the page puts them where a reader would see them.
        viewport = page.viewport_size
        assert viewport is not None
        try:
            page.evaluate("window.scrollTo(0, 0)")
            current = viewport["height"]
            for _ in range(3):
                height = int(page.evaluate("document.documentElement.scrollHeight"))
                if height <= current:
                    break
                page.set_viewport_size({"width": viewport["width"], "height": height})
                current = height
            settle(page)
            page.screenshot(path=str(path))
        finally:
            page.set_viewport_size(viewport)
    assert path.stat().st_size > 5_000, f"{path} looks empty"
    return path


@dataclass
class Traffic:
    """Everything the browser got from the server, to look for what must not be there."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    request_urls: list[str] = field(default_factory=list)
    page_urls: list[str] = field(default_factory=list)
    ws_urls: list[str] = field(default_factory=list)
    ws_frames: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def leaks(self, needle: str) -> list[str]:
        found = [url for url, body in self.bodies.items() if needle.encode() in body]
        found += [f"websocket frame: {f[:120]}" for f in self.ws_frames if needle in f]
        return found


def watch(page: Page) -> Traffic:
    """Record every response body, socket frame and URL the tab sees.

    (Not with context.route(): a document fulfilled by Playwright counts as a public
    address, and Chromium's local network access checks then block its WebSocket.)
    """
    traffic = Traffic()

    def on_response(response: Response) -> None:
        request = response.request
        key = f"{request.method} {response.url} #{len(traffic.bodies) + len(traffic.unread)}"
        if 300 <= response.status < 400:  # 304 after a reload, redirects: no body of their own
            traffic.bodies[key] = b""
            return
        try:
            traffic.bodies[key] = response.body()
        except Error as exc:
            traffic.unread.append(f"{key}: {exc.message.splitlines()[0]}")

    page.on("response", on_response)
    page.on("request", lambda r: traffic.request_urls.append(r.url))
    page.on("framenavigated", lambda f: traffic.page_urls.append(f.url) if f == page.main_frame else None)

    def on_ws(ws: WebSocket) -> None:
        traffic.ws_urls.append(ws.url)
        ws.on("framereceived", lambda payload: traffic.ws_frames.append(str(payload)))

    page.on("websocket", on_ws)
    return traffic


def new_reader(
    browser: Browser, *, phone: bool, locale: str = "zh-CN"
) -> tuple[BrowserContext, Page, Traffic]:
    if phone:
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale=locale,
        )
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale=locale)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORDER)
    page = context.new_page()
    traffic = watch(page)
    return context, page, traffic


def story_id_of(page: Page) -> str:
    m = re.search(r"#/story/([^/?#]+)", page.url)
    assert m, f"not on a story: {page.url}"
    return m.group(1)


def token_of(page: Page, story_id: str) -> str:
    token = page.evaluate(
        """(id) => {
          const lib = JSON.parse(localStorage.getItem('storybook.library.v1') || '[]');
          const entry = lib.find((s) => s.id === id);
          return entry ? entry.token : null;
        }""",
        story_id,
    )
    assert isinstance(token, str) and token, "the story's token is not in this device's library"
    return token


def api_story(stack: Stack, story_id: str, token: str) -> dict[str, Any]:
    r = httpx.get(
        f"{stack.gateway_url}/api/stories/{story_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def inject_image_fault(stack: Stack, mode: str = "no_credits", count: int = 1) -> None:
    r = httpx.post(f"{stack.jimeng_url}/_fake/faults", json={"mode": mode, "count": count}, timeout=10)
    assert r.status_code < 300, r.text


def reader_log(page: Page) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = page.evaluate("() => window.__storybookLog || []")
    return log


# ------------------------------------------------------------------ the reader's page

CHOICES = "#page-after [data-testid=choice-button]"
PICTURE = "#picture img[data-testid=page-image]"
IMAGE_READY = """(n) => {
  const b = document.getElementById('book');
  const i = document.querySelector('#picture img[data-testid="page-image"]');
  return b && !b.hidden && b.dataset.page === String(n) && i && i.complete && i.naturalWidth > 0
    && i.getAttribute('src').startsWith('/media/');
}"""
DRAWING_WHILE_WRITING = """(n) => {
  const b = document.getElementById('book');
  return b && !b.hidden && b.dataset.page === String(n) && b.dataset.pageStatus === 'writing'
    && document.getElementById('page-text').textContent.length >= 12
    && document.querySelector('#picture [data-testid="image-elapsed"]')
    && document.getAnimations().every((a) => {  // the page has faded in
         const t = a.effect && a.effect.getComputedTiming();
         return !t || t.iterations === Infinity || a.playState !== 'running';
       });
}"""


def book_on(page: Page, n: int, indicator: str | None = None) -> None:
    """The reader shows page n (0-based); `indicator` is what the page's badge says."""
    expect(page.get_by_test_id("book")).to_be_visible()
    expect(page.get_by_test_id("book")).to_have_attribute("data-page", str(n))
    if indicator is None:
        indicator = f"第 {n + 1} 页 · 共 {STORY_PAGES} 页"
    expect(page.get_by_test_id("page-indicator")).to_have_text(indicator)


def wait_choices(page: Page, n: int, indicator: str | None = None) -> list[str]:
    """Page n is written and offers its choices; returns their texts."""
    book_on(page, n, indicator)
    expect(page.get_by_test_id("book")).to_have_attribute("data-page-status", "done")
    buttons = page.locator(CHOICES)
    expect(buttons.first).to_be_visible()
    expect(buttons.first).to_be_enabled()
    texts = [t.strip() for t in buttons.locator(".choice-text").all_inner_texts()]
    assert 2 <= len(texts) <= 3, texts
    return texts


def wait_picture(page: Page, n: int) -> str:
    """Page n shows its picture, loaded; returns its src."""
    page.wait_for_function(IMAGE_READY, arg=n)
    src = page.locator(PICTURE).get_attribute("src")
    assert src
    return src


def streamed_texts(log: list[dict[str, Any]], n: int) -> list[str]:
    """The distinct non-empty texts page n showed before its choices appeared, in order."""
    seen: list[str] = []
    for e in log:
        if e["page"] != str(n):
            continue
        if e["choices"]:
            break
        if e["text"] and (not seen or seen[-1] != e["text"]):
            seen.append(e["text"])
    return seen


# ---------------------------------------------------------------------------- accessibility

AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_REPORTS = ARTIFACTS / "axe"
# WCAG 2.2 AA: every rule axe tags for levels A and AA up to 2.2.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = ("serious", "critical")


def axe_check(page: Page, screen: str) -> list[dict[str, Any]]:
    """Run axe-core on what the page shows now; fail on serious or critical violations.

    Every finding is written to test-artifacts/axe/<screen>.json. Set AXE_REPORT_ONLY=1
    to record without failing (to measure a page before it is fixed).
    """
    if not AXE_JS.exists():
        pytest.fail(
            f"axe-core is not installed ({AXE_JS} is missing): run `npm ci` at the top of the "
            "repository (the Makefile does before the tests).",
            pytrace=False,
        )
    settle(page)  # colours caught mid-transition are not the page's
    # evaluate() is not bound by the page's Content-Security-Policy, unlike a <script> tag.
    if not page.evaluate("() => Boolean(window.axe)"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate(
        """(tags) => axe
            .run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })
            .then((r) => r.violations.map((v) => ({
              id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
            })))""",
        AXE_TAGS,
    )
    AXE_REPORTS.mkdir(parents=True, exist_ok=True)
    report = json.dumps(result, ensure_ascii=False, indent=1)
    (AXE_REPORTS / f"{screen}.json").write_text(report, encoding="utf-8")
    blocking = [v for v in result if v["impact"] in BLOCKING]
    if not os.environ.get("AXE_REPORT_ONLY"):
        found = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:4]]}"
            for v in blocking
        ]
        assert not found, f"axe on {screen}: " + "; ".join(found)
    return list(result)


def target_sizes(page: Page, selector: str = "button, a.btn, .nav-btn, input[type=radio] + *") -> list[str]:
    """Visible controls smaller than 44x44 CSS px (WCAG 2.5.5's size, beyond AA's 24)."""
    small: list[str] = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)]
          .filter((el) => el.offsetParent && !el.closest('[hidden]'))
          .map((el) => [el, el.getBoundingClientRect()])
          .filter(([, r]) => r.width > 0 && (r.width < 43.5 || r.height < 43.5))
          .map(([el, r]) => `${el.dataset.testid || el.id || el.className} `
                            + `${Math.round(r.width)}x${Math.round(r.height)}`)""",
        selector,
    )
    return small
