"""The book as an EPUB 3: a title page, one XHTML chapter per page, nav and NCX."""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

from services.common.mediastore import MediaStore
from services.gateway.export import book
from services.gateway.export.as_html import FONT_STACK

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


def to_epub(view: book.Book, store: MediaStore) -> bytes:
    """An EPUB 3: a title page, one XHTML chapter per page with its picture, nav + NCX."""
    story = book.plain(view)
    from ebooklib import epub

    lang, title = book.language_tag(story), book.title_of(story)
    epub_book = epub.EpubBook()
    epub_book.set_identifier(_identifier(story))
    epub_book.set_title(title)
    epub_book.set_language(lang)
    epub_book.add_author("Interactive Storybook")
    css = epub.EpubItem(uid="style", file_name="style/book.css", media_type="text/css", content=_EPUB_CSS)
    epub_book.add_item(css)

    def chapter(file_name: str, label: str, body: str) -> Any:
        item = epub.EpubHtml(title=label, file_name=file_name, lang=lang)
        item.content = (
            f"<html><head><title>{book.escape(label)}</title></head><body>{body}</body></html>"
        ).encode()
        item.add_item(css)
        epub_book.add_item(item)
        return item

    cover = book.cover_picture(story, store, web=False)
    cover_body = f'<h1 class="cover-title">{book.escape(title)}</h1>'
    if cover is not None:
        cover_name = f"images/cover.{cover.ext}"
        epub_book.set_cover(cover_name, cover.data, create_page=False)
        cover_body += f'<figure><img src="{cover_name}" alt="{book.escape(title)}"/></figure>'
    title_page = chapter("title.xhtml", title, cover_body)
    chapters = [title_page]
    pages = book.book_pages(story, store, web=False)
    for i, page in enumerate(pages):
        label = book.word(story, "page", n=page.number)
        body = ""
        if page.picture is not None:
            name = f"images/page-{page.number:02d}.{page.picture.ext}"
            epub_book.add_item(
                epub.EpubImage(
                    uid=f"image-{page.number:02d}",
                    file_name=name,
                    media_type=page.picture.mime,
                    content=page.picture.data,
                )
            )
            body += f'<figure><img src="{name}" alt="{book.escape(page.alt or label)}"/></figure>'
        body += "".join(f"<p>{book.escape(p).replace(chr(10), '<br/>')}</p>" for p in page.paragraphs)
        if page.chosen:
            body += f'<p class="chosen">→ {book.escape(book.word(story, "chose", x=page.chosen))}</p>'
        if i == len(pages) - 1 and book.ended(story):
            body += f'<p class="end">{book.escape(book.word(story, "end"))}</p>'
        chapters.append(chapter(f"page-{page.number:02d}.xhtml", label, body))
    epub_book.toc = chapters
    epub_book.add_item(epub.EpubNcx())
    epub_book.add_item(epub.EpubNav())
    epub_book.spine = chapters  # the nav is in the manifest for the reader's menu, not a page of the book
    out = io.BytesIO()
    epub.write_epub(out, epub_book)
    return out.getvalue()
