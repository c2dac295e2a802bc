"""The book as a PDF: a square picture-book page, the picture above, large type below."""

from __future__ import annotations

import html
import io
import os
from pathlib import Path
from typing import Any

from services.common.mediastore import MediaStore
from services.gateway.export import book

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


def _pdf_flowables(story: dict[str, Any], page: book.BookPage, last: bool, size: float) -> list[Any]:
    from reportlab.platypus import Paragraph

    st = _pdf_styles(book.is_zh(story), size)
    flows: list[Any] = [Paragraph(_pdf_markup(p), st["body"]) for p in page.paragraphs]
    if page.chosen:
        flows.append(Paragraph(_pdf_markup("→ " + book.word(story, "chose", x=page.chosen)), st["chosen"]))
    if last and book.ended(story):
        flows.append(Paragraph(_pdf_markup(book.word(story, "end")), st["end"]))
    return flows


def _flow_height(flows: list[Any], width: float) -> float:
    total = 0.0
    for i, f in enumerate(flows):
        _, h = f.wrap(width, 10_000)
        total += h + (f.getSpaceBefore() if i else 0) + (f.getSpaceAfter() if i < len(flows) - 1 else 0)
    return total


def _draw_picture(c: Any, pic: book.Picture, x: float, y: float, w: float, h: float) -> tuple[float, float]:
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


def _pdf_cover(c: Any, story: dict[str, Any], cover: book.Picture | None) -> None:
    from reportlab.platypus import Paragraph

    width, height = PDF_PAGE
    c.setFillColorRGB(1.0, 0.96, 0.88)
    c.rect(0, 0, width, height, stroke=0, fill=1)
    box_w = width - 2 * PDF_MARGIN
    style = _pdf_styles(book.is_zh(story), 20)["title"]
    for size in (34, 28, 22):  # a long title gets smaller type; beyond a third of the page it is cut
        style.fontSize, style.leading = size, size * 1.35
        title = Paragraph(_pdf_markup(book.title_of(story)), style)
        _, th = title.wrap(box_w, height)
        if th <= height / 3:
            break
    th = min(th, height / 3)
    # The title alone sits a little above the middle; with the sheet, at the top.
    top = (height + th) / 2 + 20 if cover is None else height - PDF_MARGIN - 24
    c.saveState()
    if book.is_zh(story):
        # STSong-Light comes in one weight: stroke the outline too for a bold title.
        c.setStrokeColorRGB(*ACCENT)
        c.setLineWidth(0.8)
        c.addLiteral("2 Tr")  # text render mode: fill, then stroke (undone by restoreState)
    _frame_flow(c, [title], PDF_MARGIN, top - th - 2, box_w, th + 2)
    c.restoreState()
    if cover is not None:
        box_h = top - th - 28 - (PDF_MARGIN + 10)
        _draw_picture(c, cover, PDF_MARGIN, PDF_MARGIN + 10, box_w, box_h)


def _pdf_page(c: Any, story: dict[str, Any], page: book.BookPage, last: bool) -> None:
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


def _pdf_long_page(c: Any, page: book.BookPage, flows: list[Any], min_pic: float, gap: float) -> None:
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


def to_pdf(view: book.Book, store: MediaStore) -> bytes:
    """A picture-book PDF: a cover with the title (and the character sheet), then one page
    per story page with its picture above and its text below."""
    story = book.plain(view)
    from reportlab.pdfgen.canvas import Canvas

    zh = book.is_zh(story)
    if zh:
        _register_cjk()
    out = io.BytesIO()
    c = Canvas(out, pagesize=PDF_PAGE, lang=book.language_tag(story), pageCompression=1)
    c.setTitle(book.title_of(story))
    c.setAuthor("Interactive Storybook")
    c.setCreator("Interactive Storybook")
    c.setSubject(book.title_of(story))
    _pdf_cover(c, story, book.cover_picture(story, store, web=False))
    c.showPage()
    pages = book.book_pages(story, store, web=False)
    for i, page in enumerate(pages):
        _pdf_page(c, story, page, last=i == len(pages) - 1)
    c.save()
    return out.getvalue()
