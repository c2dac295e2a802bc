"""Export a story as a picture book: one self-contained HTML page, a PDF, an EPUB 3.

Pure functions over the story view the store hands out (`StoryView`, or the shared
`SharedStory`: the public story JSON) and the media store its pictures live in.
Nothing here knows about tokens, requests or the web framework; the endpoints are wired elsewhere.

Only written pages (status "done") go into the book. A picture is used when its status
is "ready" and its URL names a readable picture in the store; otherwise the page keeps
its text and simply has no picture. Story text is user and model content: it is escaped
everywhere it is put into markup.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from services.common.media import key_of_url
from services.common.mediastore import MediaStore
from services.gateway.store.views import SharedStory, StoryView

log = logging.getLogger(__name__)

# Pictures are downscaled to this many pixels on their long side: ~220 dpi across a
# PDF page, sharp on any tablet, and it keeps a 12-page book a few MB instead of 50.
MAX_SIDE = 1600

# A story as the store hands it out: a reader's own, or a shared one (no choices).
Book = StoryView | SharedStory


def _plain(story: Book) -> dict[str, Any]:
    """The view as its public JSON, which the book is laid out from: a shared story's
    pages have no `chosen`, and every reader below copes with a field that is absent."""
    return story.model_dump(mode="json")


# ------------------------------------------------------------------------------ words


def _lang(story: dict[str, Any]) -> str:
    """The BCP 47 tag of the story's language ("zh" -> "zh-CN")."""
    language = str(story.get("language") or "zh")
    return {"zh": "zh-CN", "en": "en"}.get(language, language)


def _is_zh(story: dict[str, Any]) -> bool:
    return _lang(story).lower().startswith("zh")


_WORDS = {
    "zh": {
        "page": "第 {n} 页",
        "chose": "选择：{x}",
        "end": "完",
        "story": "故事",
        "read": "读给我听",
        "stop": "停下",
        "own": "编一个自己的故事",
    },
    "en": {
        "page": "Page {n}",
        "chose": "Chosen: {x}",
        "end": "The End",
        "story": "Story",
        "read": "Read aloud",
        "stop": "Stop reading",
        "own": "Make your own story",
    },
}


def _word(story: dict[str, Any], key: str, **kw: Any) -> str:
    return _WORDS["zh" if _is_zh(story) else "en"][key].format(**kw)


def _title(story: dict[str, Any]) -> str:
    title = str(story.get("title") or "").strip()
    return title or _word(story, "story")


# ------------------------------------------------------------------------------ pages


@dataclass(frozen=True)
class Picture:
    data: bytes
    mime: str  # image/jpeg, image/png or image/webp
    width: int
    height: int

    @property
    def ext(self) -> str:
        return {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[self.mime]

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class BookPage:
    number: int  # 1-based, as a reader counts
    paragraphs: list[str]
    chosen: str | None
    picture: Picture | None
    alt: str  # what the picture shows, in the story's language ("" when the writer gave none)


def _picture(image: Any, store: MediaStore, *, web: bool) -> Picture | None:
    """A page's (or the cover's) picture ready to embed, or None to go without.

    `web` allows WebP (browsers show it); PDF and EPUB get PNG or JPEG, since reportlab
    cannot embed WebP and many e-readers do not show it.
    """
    if not isinstance(image, dict) or image.get("status") != "ready":
        return None
    key = key_of_url(image.get("url"))
    data = store.get(key) if key is not None else None
    if key is None or data is None:
        log.info("export: picture %r is missing; the page goes without it", image.get("url"))
        return None
    try:
        return _encode(data, web=web)
    except Exception as exc:  # a broken file never breaks the book
        log.warning("export: picture %s cannot be read (%s); the page goes without it", key, exc)
        return None


def _encode(data: bytes, *, web: bool) -> Picture:
    allowed = {"JPEG": "image/jpeg", "PNG": "image/png"}
    if web:
        allowed["WEBP"] = "image/webp"
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        fmt, size = im.format or "", im.size
        if fmt in allowed and max(size) <= MAX_SIDE:
            return Picture(data, allowed[fmt], *size)
        img = im.copy()
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if web and fmt == "WEBP":
        img.save(out, "WEBP", quality=85)
        mime = "image/webp"
    elif alpha:
        img.convert("RGBA").save(out, "PNG", optimize=True)
        mime = "image/png"
    else:
        img.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
        mime = "image/jpeg"
    return Picture(out.getvalue(), mime, *img.size)


def _paragraphs(text: str) -> list[str]:
    """Paragraphs of a page's text: blank lines split them; single line breaks stay."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _chosen(page: dict[str, Any]) -> str | None:
    chosen = page.get("chosen")
    if not isinstance(chosen, dict):
        return None
    if chosen.get("action"):
        return str(chosen["action"])
    choice, choices = chosen.get("choice"), page.get("choices") or []
    if isinstance(choice, int) and 0 <= choice < len(choices):
        return str(choices[choice])
    return None


def _book_pages(story: dict[str, Any], store: MediaStore, *, web: bool) -> list[BookPage]:
    pages = [p for p in story.get("pages") or [] if isinstance(p, dict) and p.get("status") == "done"]
    pages.sort(key=lambda p: int(p.get("index") or 0))
    return [
        BookPage(
            number=int(p.get("index") or 0) + 1,
            paragraphs=_paragraphs(str(p.get("text") or "")),
            chosen=_chosen(p),
            picture=_picture(p.get("image"), store, web=web),
            alt=str(p.get("alt") or "").strip(),
        )
        for p in pages
    ]


def _cover_picture(story: dict[str, Any], store: MediaStore, *, web: bool) -> Picture | None:
    sheet = story.get("character_sheet")
    if not isinstance(sheet, dict) or not sheet.get("url"):
        return None
    # The sheet's url is only set once it is drawn; its status may say "ready" or be absent.
    return _picture({"status": "ready", "url": sheet["url"]}, store, web=web)


def _ended(story: dict[str, Any]) -> bool:
    return story.get("status") == "ended"


# ------------------------------------------------------------------------------ file name


def filename(view: Book, ext: str) -> str:
    """A safe file name from the title: "Tutu Goes to the Moon!" -> "Tutu-Goes-to-the-Moon.pdf".

    Accents are folded to ASCII; letters of other scripts (a Chinese title) are kept, so
    "图图去月亮" -> "图图去月亮.pdf" (send it as RFC 6266 `filename*=UTF-8''...` with an
    ASCII `filename=` fallback). No path separators, dots in front, control or shell
    characters. Without a usable title: "story-<first 8 of the id>".
    """
    story = _plain(view)
    ext = re.sub(r"[^A-Za-z0-9]", "", ext)[:10].lower()
    title = unicodedata.normalize("NFKD", str(story.get("title") or ""))
    title = "".join(ch for ch in title if not unicodedata.combining(ch))
    title = unicodedata.normalize("NFC", title)
    words = "".join(ch if (ch.isalnum() or ch in "-_") else " " for ch in title).split()
    stem = "-".join(words).strip("-_")[:60].strip("-_")
    if not stem:
        sid = re.sub(r"[^A-Za-z0-9]", "", str(story.get("story_id") or ""))[:8].lower()
        stem = f"story-{sid}" if sid else "story"
    return f"{stem}.{ext}" if ext else stem


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


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _text_html(paragraphs: Iterable[str]) -> str:
    return "".join(f"<p>{_e(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _share_tools(story: dict[str, Any]) -> str:
    """A shared story's page also reads itself aloud and invites the reader to make one."""
    read, stop = _e(_word(story, "read")), _e(_word(story, "stop"))
    return (
        '<nav class="tools" aria-label="' + _e(_word(story, "story")) + '">'
        f'<button type="button" id="read-aloud" data-read="{read}" data-stop="{stop}" '
        f'aria-pressed="false" hidden>{read}</button>'
        f'<a href="/" id="make-own">{_e(_word(story, "own"))}</a>'
        "</nav>"
    )


def to_html(view: Book, store: MediaStore, *, shared: bool = False) -> bytes:
    """One self-contained HTML page: pictures as data URIs, inline CSS.

    The file a reader downloads has no script at all. The page a share link opens
    (`shared`) adds read-aloud (one script from our own origin) and a way to start a story.
    """
    story = _plain(view)
    lang, title = _lang(story), _title(story)
    script = " script-src 'self';" if shared else ""
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(lang)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched from anywhere: no external script, font, image, frame.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' + script + " "
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        '<script type="module" src="/static/share-page.js"></script>' if shared else "",
        "</head>",
        "<body>",
        "<main>",
        _share_tools(story) if shared else "",
        '<section class="cover">',
        f"<h1>{_e(title)}</h1>",
    ]
    cover = _cover_picture(story, store, web=True)
    if cover is not None:
        parts.append(f'<figure><img src="{cover.data_uri()}" alt="{_e(title)}"></figure>')
    parts.append("</section>")
    pages = _book_pages(story, store, web=True)
    for i, page in enumerate(pages):
        label = _word(story, "page", n=page.number)
        parts.append(f'<section class="page" id="page-{page.number}" aria-label="{_e(label)}">')
        if page.picture is not None:
            alt = _e(page.alt or label)
            parts.append(f'<figure><img src="{page.picture.data_uri()}" alt="{alt}"></figure>')
        parts.append(f'<div class="text">{_text_html(page.paragraphs)}</div>')
        if page.chosen:
            parts.append(f'<p class="chosen">→ {_e(_word(story, "chose", x=page.chosen))}</p>')
        if i == len(pages) - 1 and _ended(story):
            parts.append(f'<p class="end">{_e(_word(story, "end"))}</p>')
        parts.append(f'<p class="num">{page.number}</p>')
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts).encode("utf-8")


# ------------------------------------------------------------------------------ PDF

# The page is 210 mm square. Our pictures are 4:3 landscape (jimeng's default ratio), and
# a picture book page carries the picture with a few lines of text beneath it: on a
# square page a 4:3 picture spans the full width and still leaves a third of the page for
# large type. A5 landscape would shrink the picture to under half the page to make room
# for the text. 210 mm is also A4's width, so the book prints on A4 paper at 100 %, and
# square is the classic picture-book trim.
PDF_PAGE = (595.2756, 595.2756)  # 210 mm x 210 mm in points
PDF_MARGIN = 40.0  # ~14 mm
PDF_FOOTER = 22.0  # room for the page number
TEXT_SIZES = (22, 20, 18, 16)  # the largest that fits wins; children need large type
PIC_SHARE = 0.55  # the least share of the page's height a picture keeps
CJK_FONT = "STSong-Light"
EMBEDDED_CJK = "StorybookCJK"
CJK_FONT_FILES = [
    Path(p)
    for p in (
        os.environ.get("PDF_CJK_FONT", ""),
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    )
    if p
]
_cjk_font: str | None = None
INK = (0.23, 0.18, 0.15)
ACCENT = (0.76, 0.34, 0.10)


# Chinese punctuation that must not begin a line. reportlab's CJK wrapping knows the
# Japanese set (。、」) but not the Chinese full-width comma, marks and closing quotes, so a
# line could start with "，". Such a mark is hung at the end of the line before instead.
CJK_CANNOT_START = "，！？；：”’》〉…—～．·"


def _register_cjk() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import paragraph

    # A process-wide addition to reportlab's own table (read at wrap time by its CJK line
    # splitter); it only ever adds marks, so any other reportlab use can only gain.
    missing = "".join(ch for ch in CJK_CANNOT_START if ch not in paragraph.ALL_CANNOT_START)
    if missing:
        paragraph.ALL_CANNOT_START += missing

    global _cjk_font
    if _cjk_font is not None:
        return
    for candidate in CJK_FONT_FILES:
        if candidate.is_file():
            # A TrueType CJK font from the system's font package (Debian's
            # fonts-wqy-microhei, installed by .ci/run and the Dockerfile): subset and
            # embedded, so the book reads the same in every viewer.
            from reportlab.pdfbase.ttfonts import TTFont

            pdfmetrics.registerFont(TTFont(EMBEDDED_CJK, str(candidate), subfontIndex=0))
            _cjk_font = EMBEDDED_CJK
            return
    # Fallback: one of the Adobe Asian CID fonts reportlab ships (metrics and Unicode
    # CMap only; the viewer supplies the glyphs from its own Song face).
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    _cjk_font = CJK_FONT


def _pdf_styles(zh: bool, size: float) -> dict[str, Any]:
    from reportlab.lib.enums import TA_CENTER, TA_LEFT
    from reportlab.lib.styles import ParagraphStyle

    font = (_cjk_font or CJK_FONT) if zh else "Helvetica"
    cjk = {"wordWrap": "CJK"} if zh else {}
    body = ParagraphStyle(
        "body",
        fontName=font,
        fontSize=size,
        leading=size * (1.65 if zh else 1.45),
        textColor=INK,
        alignment=TA_LEFT,
        spaceAfter=size * 0.5,
        **cjk,
    )
    return {
        "body": body,
        "chosen": ParagraphStyle(
            "chosen",
            parent=body,
            fontName=font if zh else "Helvetica-Oblique",
            fontSize=size * 0.7,
            leading=size * 1.05,
            textColor=(0.54, 0.43, 0.33),
            spaceBefore=size * 0.2,
        ),
        "end": ParagraphStyle(
            "end",
            parent=body,
            fontSize=size * 1.1,
            leading=size * 1.6,
            alignment=TA_CENTER,
            textColor=ACCENT,
            spaceBefore=size * 0.4,
        ),
        "title": ParagraphStyle(
            "title",
            fontName=font if zh else "Helvetica-Bold",
            fontSize=34,
            leading=46,
            alignment=TA_CENTER,
            textColor=ACCENT,
            **cjk,
        ),
    }


def _pdf_markup(text: str) -> str:
    # reportlab paragraphs take a small XML markup: escape it, keep line breaks.
    return html.escape(text, quote=False).replace("\n", "<br/>")


def _pdf_flowables(story: dict[str, Any], page: BookPage, last: bool, size: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    st = _pdf_styles(_is_zh(story), size)
    flows: list[Any] = [Paragraph(_pdf_markup(p), st["body"]) for p in page.paragraphs]
    if page.chosen:
        flows.append(Paragraph(_pdf_markup("→ " + _word(story, "chose", x=page.chosen)), st["chosen"]))
    if last and _ended(story):
        flows.append(Paragraph(_pdf_markup(_word(story, "end")), st["end"]))
    return flows


def _flow_height(flows: list[Any], width: float) -> float:
    total = 0.0
    for i, f in enumerate(flows):
        _, h = f.wrap(width, 10_000)
        total += h + (f.getSpaceBefore() if i else 0) + (f.getSpaceAfter() if i < len(flows) - 1 else 0)
    return total


def _draw_picture(c: Any, pic: Picture, x: float, y: float, w: float, h: float) -> tuple[float, float]:
    """Draw the picture as large as fits in (w, h), keeping its aspect ratio, centred
    horizontally at the top of the box, with rounded corners; returns its size."""
    from reportlab.lib.utils import ImageReader

    scale = min(w / pic.width, h / pic.height)
    dw, dh = pic.width * scale, pic.height * scale
    dx, dy = x + (w - dw) / 2, y + h - dh
    c.saveState()
    path = c.beginPath()
    path.roundRect(dx, dy, dw, dh, 12)
    c.clipPath(path, stroke=0, fill=0)
    c.drawImage(ImageReader(io.BytesIO(pic.data)), dx, dy, dw, dh, mask="auto")
    c.restoreState()
    return dw, dh


def _page_number(c: Any, n: int) -> None:
    c.setFont("Helvetica", 10)
    c.setFillColorRGB(0.63, 0.55, 0.48)
    c.drawCentredString(PDF_PAGE[0] / 2, PDF_MARGIN / 2 + 2, str(n))


def _frame_flow(c: Any, flows: list[Any], x: float, y: float, w: float, h: float) -> None:
    """Draw from the front of `flows` what fits in the box, splitting a paragraph at the
    box's end; what is drawn leaves the list."""
    from reportlab.platypus import Frame

    frame = Frame(x, y, w, h, leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0, showBoundary=0)
    while flows:
        if frame.add(flows[0], c, trySplit=0):
            del flows[0]
            continue
        parts = frame.split(flows[0], c)
        if len(parts) < 2 or not frame.add(parts[0], c, trySplit=0):
            return
        flows[:1] = parts[1:]
        return


def _pdf_cover(c: Any, story: dict[str, Any], cover: Picture | None) -> None:
    from reportlab.platypus import Paragraph

    width, height = PDF_PAGE
    c.setFillColorRGB(1.0, 0.96, 0.88)
    c.rect(0, 0, width, height, stroke=0, fill=1)
    box_w = width - 2 * PDF_MARGIN
    style = _pdf_styles(_is_zh(story), 20)["title"]
    for size in (34, 28, 22):  # a long title gets smaller type; beyond a third of the page it is cut
        style.fontSize, style.leading = size, size * 1.35
        title = Paragraph(_pdf_markup(_title(story)), style)
        _, th = title.wrap(box_w, height)
        if th <= height / 3:
            break
    th = min(th, height / 3)
    # The title alone sits a little above the middle; with the sheet, at the top.
    top = (height + th) / 2 + 20 if cover is None else height - PDF_MARGIN - 24
    c.saveState()
    if _is_zh(story):
        # STSong-Light comes in one weight: stroke the outline too for a bold title.
        c.setStrokeColorRGB(*ACCENT)
        c.setLineWidth(0.8)
        c.addLiteral("2 Tr")  # text render mode: fill, then stroke (undone by restoreState)
    _frame_flow(c, [title], PDF_MARGIN, top - th - 2, box_w, th + 2)
    c.restoreState()
    if cover is not None:
        box_h = top - th - 28 - (PDF_MARGIN + 10)
        _draw_picture(c, cover, PDF_MARGIN, PDF_MARGIN + 10, box_w, box_h)


def _pdf_page(c: Any, story: dict[str, Any], page: BookPage, last: bool) -> None:
    width, height = PDF_PAGE
    box_w = width - 2 * PDF_MARGIN
    bottom = PDF_MARGIN + PDF_FOOTER - 8
    avail = height - PDF_MARGIN - bottom
    gap = 16.0
    pic = page.picture
    min_pic = avail * PIC_SHARE if pic else 0.0
    # The largest type that fits beside a picture of at least PIC_SHARE of the page.
    room = avail - (min_pic + gap if pic else 0)
    flows: list[Any] = []
    text_h = 0.0
    for size in TEXT_SIZES:
        flows = _pdf_flowables(story, page, last, size)
        text_h = _flow_height(flows, box_w)
        if text_h <= room:
            break
    else:
        _pdf_long_page(c, page, flows, min_pic, gap)
        return
    if pic is None:
        # Text only: set it a little above the middle of the page.
        top = min(bottom + (avail + text_h) / 2 + avail * 0.08, bottom + avail)
    else:
        scale = min(box_w / pic.width, (avail - text_h - gap) / pic.height)
        group = pic.height * scale + gap + text_h
        top = bottom + avail - (avail - group) / 2  # picture and text centred as one group
        _, ph = _draw_picture(c, pic, PDF_MARGIN, top - pic.height * scale, box_w, pic.height * scale)
        top -= ph + gap
    _frame_flow(c, flows, PDF_MARGIN, top - text_h - 2, box_w, text_h + 2)
    _page_number(c, page.number)
    c.showPage()


def _pdf_long_page(c: Any, page: BookPage, flows: list[Any], min_pic: float, gap: float) -> None:
    """Text too long for one page even in the smallest size we allow: the picture at its
    smallest with the text beneath, and the rest of the text flowing on over more pages."""
    width, height = PDF_PAGE
    box_w = width - 2 * PDF_MARGIN
    bottom = PDF_MARGIN + PDF_FOOTER - 8
    avail = height - PDF_MARGIN - bottom
    top = bottom + avail
    if page.picture is not None:
        _, ph = _draw_picture(c, page.picture, PDF_MARGIN, top - min_pic, box_w, min_pic)
        top -= ph + gap
    while flows:
        before, whole_page = len(flows), top - bottom >= avail
        _frame_flow(c, flows, PDF_MARGIN, bottom, box_w, top - bottom)
        _page_number(c, page.number)
        c.showPage()
        if len(flows) == before and whole_page:  # not even a whole page takes it: never loop
            break
        top = bottom + avail


def to_pdf(view: Book, store: MediaStore) -> bytes:
    """A picture-book PDF: a cover with the title (and the character sheet), then one page
    per story page with its picture above and its text below."""
    story = _plain(view)
    from reportlab.pdfgen.canvas import Canvas

    zh = _is_zh(story)
    if zh:
        _register_cjk()
    out = io.BytesIO()
    c = Canvas(out, pagesize=PDF_PAGE, lang=_lang(story), pageCompression=1)
    c.setTitle(_title(story))
    c.setAuthor("Interactive Storybook")
    c.setCreator("Interactive Storybook")
    c.setSubject(_title(story))
    _pdf_cover(c, story, _cover_picture(story, store, web=False))
    c.showPage()
    pages = _book_pages(story, store, web=False)
    for i, page in enumerate(pages):
        _pdf_page(c, story, page, last=i == len(pages) - 1)
    c.save()
    return out.getvalue()


# ------------------------------------------------------------------------------ EPUB

_EPUB_CSS = """
body { font-family: {fonts}; color: #3b2f26; line-height: 1.8; margin: 0 4%; }
h1 { text-align: center; color: #c2571a; font-size: 2em; line-height: 1.3; margin: 1.5em 0 1em; }
.cover-title { margin-top: 2.5em; }
figure { margin: 0 0 1em; text-align: center; }
img { max-width: 100%; max-height: 65vh; height: auto; }
p { font-size: 1.4em; margin: 0 0 .7em; }
p.chosen { font-size: 1em; color: #8a6d55; font-style: italic; }
:lang(zh) p.chosen { font-style: normal; }
p.end { text-align: center; color: #c2571a; font-size: 1.6em; margin-top: 1em; }
""".replace("{fonts}", FONT_STACK)


def _identifier(story: dict[str, Any]) -> str:
    sid = str(story.get("story_id") or "")
    try:
        return uuid.UUID(sid).urn
    except ValueError:
        return f"urn:storybook:{re.sub(r'[^A-Za-z0-9._-]', '', sid) or 'story'}"


def to_epub(view: Book, store: MediaStore) -> bytes:
    """An EPUB 3: a title page, one XHTML chapter per page with its picture, nav + NCX."""
    story = _plain(view)
    from ebooklib import epub

    lang, title = _lang(story), _title(story)
    book = epub.EpubBook()
    book.set_identifier(_identifier(story))
    book.set_title(title)
    book.set_language(lang)
    book.add_author("Interactive Storybook")
    css = epub.EpubItem(uid="style", file_name="style/book.css", media_type="text/css", content=_EPUB_CSS)
    book.add_item(css)

    def chapter(file_name: str, label: str, body: str) -> Any:
        item = epub.EpubHtml(title=label, file_name=file_name, lang=lang)
        item.content = (f"<html><head><title>{_e(label)}</title></head><body>{body}</body></html>").encode()
        item.add_item(css)
        book.add_item(item)
        return item

    cover = _cover_picture(story, store, web=False)
    cover_body = f'<h1 class="cover-title">{_e(title)}</h1>'
    if cover is not None:
        cover_name = f"images/cover.{cover.ext}"
        book.set_cover(cover_name, cover.data, create_page=False)
        cover_body += f'<figure><img src="{cover_name}" alt="{_e(title)}"/></figure>'
    title_page = chapter("title.xhtml", title, cover_body)
    chapters = [title_page]
    pages = _book_pages(story, store, web=False)
    for i, page in enumerate(pages):
        label = _word(story, "page", n=page.number)
        body = ""
        if page.picture is not None:
            name = f"images/page-{page.number:02d}.{page.picture.ext}"
            book.add_item(
                epub.EpubImage(
                    uid=f"image-{page.number:02d}",
                    file_name=name,
                    media_type=page.picture.mime,
                    content=page.picture.data,
                )
            )
            body += f'<figure><img src="{name}" alt="{_e(page.alt or label)}"/></figure>'
        body += "".join(f"<p>{_e(p).replace(chr(10), '<br/>')}</p>" for p in page.paragraphs)
        if page.chosen:
            body += f'<p class="chosen">→ {_e(_word(story, "chose", x=page.chosen))}</p>'
        if i == len(pages) - 1 and _ended(story):
            body += f'<p class="end">{_e(_word(story, "end"))}</p>'
        chapters.append(chapter(f"page-{page.number:02d}.xhtml", label, body))
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters  # the nav is in the manifest for the reader's menu, not a page of the book
    out = io.BytesIO()
    epub.write_epub(out, book)
    return out.getvalue()
