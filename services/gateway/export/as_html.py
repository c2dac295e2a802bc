"""The book as one self-contained HTML page: pictures as data URIs, inline CSS, no script."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.common.mediastore import MediaStore
from services.gateway.export import book

# ------------------------------------------------------------------------------ HTML

# Early readers: big type, generous line height, rounded/handwriting-like faces first.
# Chinese school books use Kai (楷体), whose strokes are the ones children learn to write;
# then the common CJK sans faces of each system, so Chinese never falls to a bitmap font.
FONT_STACK = (
    '"Andika", "Atkinson Hyperlegible", "Nunito", "Comic Neue", '
    '"Kaiti SC", "STKaiti", "KaiTi", "楷体", "AR PL UKai CN", '
    '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", '
    '"Source Han Sans SC", "WenQuanYi Micro Hei", "Segoe UI", "Helvetica Neue", Arial, sans-serif'
)

_CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
html { background: #f6efe3; }
body { margin: 0; font-family: {fonts}; color: #3b2f26; line-height: 1.75;
  -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
main { max-width: 46rem; margin: 0 auto; padding: 1rem; }
section { background: #fffdf8; border-radius: 1.25rem; margin: 0 0 1.5rem; padding: 1.5rem;
  box-shadow: 0 2px 10px rgba(80, 60, 30, .12); }
.cover { text-align: center; padding: 3rem 1.5rem; }
h1 { font-size: 2.6rem; line-height: 1.3; margin: 0 0 1.5rem; color: #c2571a; letter-spacing: .04em; }
figure { margin: 0 0 1.25rem; }
img { display: block; max-width: 100%; height: auto; margin: 0 auto; border-radius: .9rem; }
.text p { font-size: 1.6rem; margin: 0 0 .8em; }
:lang(zh) .text p { letter-spacing: .06em; line-height: 1.9; }
.chosen { font-size: 1.15rem; color: #8a6d55; font-style: italic; margin: .5rem 0 0; }
:lang(zh) .chosen { font-style: normal; }
.end { text-align: center; font-size: 1.8rem; color: #c2571a; margin: 1.5rem 0 0; }
.num { text-align: center; font-size: .95rem; color: #76604d; margin-top: 1rem; }
.tools { display: flex; flex-wrap: wrap; gap: .75rem; justify-content: center; margin: 0 0 1.5rem; }
.tools a, .tools button { display: inline-flex; align-items: center; min-height: 48px; padding: .6rem 1.3rem;
  border-radius: 999px; font: inherit; font-size: 1.1rem; font-weight: 700; text-decoration: none;
  border: 2px solid #a8461a; cursor: pointer; }
.tools a { background: #a8461a; color: #fff; }
.tools button { background: #fffdf8; color: #a8461a; }
.tools button[hidden] { display: none; }
.reading { background: #ffe9a8; border-radius: .3em; box-shadow: 0 0 0 .15em #ffe9a8; }
@media (prefers-reduced-motion: no-preference) { .reading { transition: background-color .2s; } }
@media print {
  html, section { background: none; }
  main { max-width: none; padding: 0; }
  section { box-shadow: none; border-radius: 0; margin: 0; padding: 0;
    break-after: page; page-break-after: always; break-inside: avoid; page-break-inside: avoid; }
  section:last-child { break-after: auto; page-break-after: auto; }
  .cover { padding-top: 30mm; }
  img { max-height: 150mm; width: auto; }
  .cover img { max-height: 170mm; }
  .text p { font-size: 18pt; }
}
""".replace("{fonts}", FONT_STACK)


def _text_html(paragraphs: Iterable[str]) -> str:
    return "".join(f"<p>{book.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _share_tools(story: dict[str, Any]) -> str:
    """A shared story's page also reads itself aloud and invites the reader to make one."""
    read, stop = book.escape(book.word(story, "read")), book.escape(book.word(story, "stop"))
    return (
        '<nav class="tools" aria-label="' + book.escape(book.word(story, "story")) + '">'
        f'<button type="button" id="read-aloud" data-read="{read}" data-stop="{stop}" '
        f'aria-pressed="false" hidden>{read}</button>'
        f'<a href="/" id="make-own">{book.escape(book.word(story, "own"))}</a>'
        "</nav>"
    )


def to_html(view: book.Book, store: MediaStore, *, shared: bool = False) -> bytes:
    """One self-contained HTML page: pictures as data URIs, inline CSS.

    The file a reader downloads has no script at all. The page a share link opens
    (`shared`) adds read-aloud (one script from our own origin) and a way to start a story.
    """
    story = book.plain(view)
    lang, title = book.language_tag(story), book.title_of(story)
    script = " script-src 'self';" if shared else ""
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{book.escape(lang)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched from anywhere: no external script, font, image, frame.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' + script + " "
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{book.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        '<script type="module" src="/static/share-page.js"></script>' if shared else "",
        "</head>",
        "<body>",
        "<main>",
        _share_tools(story) if shared else "",
        '<section class="cover">',
        f"<h1>{book.escape(title)}</h1>",
    ]
    cover = book.cover_picture(story, store, web=True)
    if cover is not None:
        parts.append(f'<figure><img src="{cover.data_uri()}" alt="{book.escape(title)}"></figure>')
    parts.append("</section>")
    pages = book.book_pages(story, store, web=True)
    for i, page in enumerate(pages):
        label = book.word(story, "page", n=page.number)
        parts.append(f'<section class="page" id="page-{page.number}" aria-label="{book.escape(label)}">')
        if page.picture is not None:
            alt = book.escape(page.alt or label)
            parts.append(f'<figure><img src="{page.picture.data_uri()}" alt="{alt}"></figure>')
        parts.append(f'<div class="text">{_text_html(page.paragraphs)}</div>')
        if page.chosen:
            parts.append(f'<p class="chosen">→ {book.escape(book.word(story, "chose", x=page.chosen))}</p>')
        if i == len(pages) - 1 and book.ended(story):
            parts.append(f'<p class="end">{book.escape(book.word(story, "end"))}</p>')
        parts.append(f'<p class="num">{page.number}</p>')
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts).encode("utf-8")
