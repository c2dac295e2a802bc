"""The book every export is laid out from: its words, its pages and their pictures.

Only written pages (status "done") go into the book. A picture is used when its status
is "ready" and its URL names a readable picture in the store; otherwise the page keeps
its text and simply has no picture.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
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


def plain(story: Book) -> dict[str, Any]:
    """The view as its public JSON, which the book is laid out from: a shared story's
    pages have no `chosen`, and every reader below copes with a field that is absent."""
    return story.model_dump(mode="json")


def language_tag(story: dict[str, Any]) -> str:
    """The BCP 47 tag of the story's language ("zh" -> "zh-CN")."""
    language = str(story.get("language") or "zh")
    return {"zh": "zh-CN", "en": "en"}.get(language, language)


def is_zh(story: dict[str, Any]) -> bool:
    return language_tag(story).lower().startswith("zh")


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


def word(story: dict[str, Any], key: str, **kw: Any) -> str:
    return _WORDS["zh" if is_zh(story) else "en"][key].format(**kw)


def title_of(story: dict[str, Any]) -> str:
    title = str(story.get("title") or "").strip()
    return title or word(story, "story")


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


def book_pages(story: dict[str, Any], store: MediaStore, *, web: bool) -> list[BookPage]:
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


def cover_picture(story: dict[str, Any], store: MediaStore, *, web: bool) -> Picture | None:
    sheet = story.get("character_sheet")
    if not isinstance(sheet, dict) or not sheet.get("url"):
        return None
    # The sheet's url is only set once it is drawn; its status may say "ready" or be absent.
    return _picture({"status": "ready", "url": sheet["url"]}, store, web=web)


def ended(story: dict[str, Any]) -> bool:
    return story.get("status") == "ended"


# ------------------------------------------------------------------------------ file name


def filename(view: Book, ext: str) -> str:
    """A safe file name from the title: "Tutu Goes to the Moon!" -> "Tutu-Goes-to-the-Moon.pdf".

    Accents are folded to ASCII; letters of other scripts (a Chinese title) are kept, so
    "图图去月亮" -> "图图去月亮.pdf" (send it as RFC 6266 `filename*=UTF-8''...` with an
    ASCII `filename=` fallback). No path separators, dots in front, control or shell
    characters. Without a usable title: "story-<first 8 of the id>".
    """
    story = plain(view)
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


def escape(text: str) -> str:
    """Story text is user and model content: escaped everywhere it goes into markup."""
    return html.escape(text, quote=True)
