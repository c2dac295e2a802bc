"""How pictures are named and found, said once for every service.

A story's pictures live under `<story_id>/` in the media store (mediastore.py: a
folder or an S3 bucket):

- a page's picture: `p{page}-a{attempt}-{random}.{ext}`, a new unguessable name for
  every drawing, so a URL is never reused and can be cached for good;
- the character sheet: `sheet-{key}.{ext}` (`sheet.{ext}` for one drawn before
  sheets had keys), found by name because pages wait for it;
- `sheet-{key}.failed`: the sheet will not come, pages draw from their text;
- `hero.jpg`: the child's own hero picture, re-encoded by the gateway; the character
  sheet is drawn from it. It is never served: no page or sheet of the story is it.

A stored picture is known to the gateway by its key, `<story_id>/<name>`, and to a
reader by its URL, `/media/<key>`. Only names that `picture_name` accepts are ever
served; markers never are.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import PurePosixPath
from typing import Literal

from services.common.mediastore import MediaStore

URL_PREFIX = "/media/"
PICTURE_TYPES = {"webp": "image/webp", "png": "image/png", "jpg": "image/jpeg"}
SHEET_FAILED = ".failed"

_STORY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PICTURE = re.compile(r"[A-Za-z0-9_-]{1,120}\.(webp|png|jpg)")

Sheet = str | Literal["failed"] | None


def sheet_name(key: str) -> str:
    """The character sheet's name without extension ("sheet" for one drawn before
    sheets had keys)."""
    return f"sheet-{key}" if key else "sheet"


def drawing_name(*, kind: str, page: int, attempt: int, sheet: str) -> str:
    """What one requested picture is called while it is drawn (the claim's name)."""
    return sheet_name(sheet) if kind == "sheet" else f"p{page}-a{attempt}"


def new_picture_name(*, page: int, attempt: int) -> str:
    return f"p{page}-a{attempt}-{secrets.token_urlsafe(12)}"


def key_of(story_id: str, name: str) -> str:
    return f"{story_id}/{name}"


HERO = "hero.jpg"


def hero_key(story_id: str) -> str:
    return key_of(story_id, HERO)


def hero_reference(story_id: str, key: str) -> str | None:
    """The hero picture a sheet task names, only when it is its own story's."""
    return key if key and key == hero_key(story_id) else None


def media_url(key: str) -> str:
    return f"{URL_PREFIX}{key}"


def picture_key(story_id: str, name: str) -> str | None:
    """The key of a servable picture, or None when the two parts name none."""
    if _STORY.fullmatch(story_id) is None or _PICTURE.fullmatch(name) is None:
        return None
    return key_of(story_id, name)


def key_of_url(url: object) -> str | None:
    """The picture key behind a `/media/...` URL, or None when it names no picture."""
    if not isinstance(url, str) or not url.startswith(URL_PREFIX):
        return None
    rest = url[len(URL_PREFIX) :].split("?", 1)[0].split("#", 1)[0]
    story_id, _, name = rest.partition("/")
    return picture_key(story_id, name)


def mime_of(key: str) -> str:
    return PICTURE_TYPES[key.rsplit(".", 1)[-1]]


def same_sheet(key: str, sheet: str) -> bool:
    """Is the stored sheet `key` the one `sheet` names? (One drawn before sheets had
    keys is kept.)"""
    return not sheet or PurePosixPath(key).stem in (sheet_name(sheet), sheet_name(""))


def data_uri(data: bytes, key: str) -> str:
    return f"data:{mime_of(key)};base64,{base64.b64encode(data).decode()}"


# ------------------------------------------------------------------ on a store


def store_picture(
    store: MediaStore, *, story_id: str, page: int, attempt: int, data: bytes, ext: str, sheet: str | None
) -> str:
    """Keep a drawn picture (`sheet` names a character sheet); its key."""
    name = sheet_name(sheet) if sheet is not None else new_picture_name(page=page, attempt=attempt)
    key = key_of(story_id, name + ext)
    store.put(key, data, content_type=mime_of(key))
    return key


def find_sheet(store: MediaStore, story_id: str, sheet: str) -> Sheet:
    """The character sheet's key, "failed" when it will never come, or None yet.

    One listing answers both questions, so an object store is asked once a look."""
    stem = key_of(story_id, sheet_name(sheet))
    found = set(store.names(stem + "."))
    for ext in PICTURE_TYPES:
        if f"{stem}.{ext}" in found:
            return f"{stem}.{ext}"
    return "failed" if stem + SHEET_FAILED in found else None


def mark_sheet_failed(store: MediaStore, story_id: str, sheet: str) -> None:
    store.put(key_of(story_id, sheet_name(sheet) + SHEET_FAILED), b"", content_type="text/plain")


def clear_sheet_failed(store: MediaStore, story_id: str, sheet: str) -> None:
    """The sheet is asked for again: pages wait for it instead of drawing from text."""
    store.delete(key_of(story_id, sheet_name(sheet) + SHEET_FAILED))
