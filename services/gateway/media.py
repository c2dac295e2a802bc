"""/media: the pictures readers see, from whichever store keeps them.

Only pictures are served (media.picture_key: no claims, markers or half-written
files), and only those a page or the character sheet shows now.

Pictures are streamed through the gateway, not redirected to signed object-store
URLs: the URL a page, a share link or an export holds stays the gateway's own
(same origin for the page's Content-Security-Policy, nothing that expires in a
saved page, no bucket address or signature shown to readers), and every name is
new for every drawing, so browsers and a CDN in front cache a picture for good and
the gateway serves each one to a reader once.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from services.common import media
from services.common.mediastore import FileStore, MediaStore
from services.gateway.api.errors import ApiError

router = APIRouter()

# Names are never reused, so a picture can be cached for good.
CACHED = {"Cache-Control": "public, max-age=31536000, immutable"}


@router.get("/media/{story_id}/{name}", include_in_schema=False)
async def picture(story_id: str, name: str, request: Request) -> Response:
    store: MediaStore = request.app.state.media
    key = media.picture_key(story_id, name)
    # Only what a page or the sheet shows now: a picture replaced by a redraw was judged
    # not good enough, and its old link stops working.
    if key is not None and not await request.app.state.store.is_current_picture(story_id, key):
        key = None
    if key is not None and isinstance(store, FileStore):
        path = store.path(key)
        if path.is_file():
            return FileResponse(path, media_type=media.mime_of(key), headers=CACHED)
    elif key is not None and (data := await asyncio.to_thread(store.get, key)) is not None:
        return Response(data, media_type=media.mime_of(key), headers=CACHED)
    raise ApiError(404, "not_found", "There is no picture at this address; it may have been drawn again.")
