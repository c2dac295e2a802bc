"""HTTP routes: stories, choices, redraws, library, sharing, exports, health.

Every body is a typed model and every answer a typed view, so the OpenAPI document
(/api/openapi.json, /api/docs) shows each request and response.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.metrics import READY
from services.gateway import export
from services.gateway.api.deps import JsonBodyRoute, PageNumber, ServiceDep, StoreDep, StoryDep
from services.gateway.api.errors import ERROR_RESPONSES, ApiError
from services.gateway.guards import SHARE_CSP
from services.gateway.hub import Hub
from services.gateway.store.views import (
    Accepted,
    Created,
    Library,
    Shared,
    SharedStory,
    StoryView,
    UsageView,
)
from services.gateway.stories import Choice, NewStory

router = APIRouter(route_class=JsonBodyRoute, responses=ERROR_RESPONSES)


@router.post("/api/stories", status_code=201)
async def create_story(req: NewStory, request: Request, service: ServiceDep) -> Created:
    client = request.client.host if request.client else "unknown"
    story_id, token = await service.create(req, client=client)
    return Created(story_id=story_id, token=token)


@router.get("/api/stories/{story_id}")
async def read_story(story_id: StoryDep, store: StoreDep, request: Request) -> StoryView:
    story = await store.read_story(story_id)
    hub: Hub = request.app.state.hub
    for page in story.pages:
        # A page being written shows what is written so far (as the socket would).
        partial = hub.partial(story_id, page.index) if page.status == "writing" else None
        if partial is not None:
            page.text = partial.text
    return story


@router.post("/api/stories/{story_id}/choices", status_code=202)
async def choose(story_id: StoryDep, req: Choice, service: ServiceDep) -> Accepted:
    await service.choose(story_id, req)
    return Accepted()


@router.post("/api/stories/{story_id}/pages/{page}/image/retry", status_code=202)
async def redraw(story_id: StoryDep, page: PageNumber, service: ServiceDep) -> Accepted:
    await service.redraw(story_id, page)
    return Accepted()


@router.post("/api/stories/{story_id}/sheet/retry", status_code=202)
async def redraw_sheet(story_id: StoryDep, service: ServiceDep) -> Accepted:
    """Draw the characters again after their picture failed; pages drawn next use it."""
    await service.redraw_sheet(story_id)
    return Accepted()


@router.post("/api/stories/{story_id}/pages/{page}/retry", status_code=202)
async def retry_page(story_id: StoryDep, page: PageNumber, service: ServiceDep) -> Accepted:
    await service.retry(story_id, page)
    return Accepted()


class LibraryEntry(BaseModel):
    story_id: str = Field(max_length=64)
    token: str = Field(max_length=128)


class LibraryRequest(BaseModel):
    stories: list[LibraryEntry] = Field(max_length=100)


@router.post("/api/library")
async def library(req: LibraryRequest, store: StoreDep) -> Library:
    """This device's stories, by the tokens it holds; unknown or wrong pairs are left out."""
    return Library(stories=await store.summaries([(e.story_id, e.token) for e in req.stories]))


@router.post("/api/stories/{story_id}/share", status_code=201)
async def share(story_id: StoryDep, store: StoreDep) -> Shared:
    share_id = await store.share(story_id)
    return Shared(share_id=share_id, url=f"/read/{share_id}")


@router.get("/api/shared/{share_id}")
async def shared(share_id: str, store: StoreDep) -> SharedStory:
    return await store.shared(share_id)


EXPORTS = {
    "html": ("text/html; charset=utf-8", export.to_html),
    "pdf": ("application/pdf", export.to_pdf),
    "epub": ("application/epub+zip", export.to_epub),
}
BINARY = {"type": "string", "format": "binary"}
# The picture book, in the format the path names.
BOOK: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the story as a picture book",
        "content": {kind.split(";")[0]: {"schema": BINARY} for kind, _ in EXPORTS.values()},
    }
}


async def _export(
    request: Request, story: StoryView | SharedStory, fmt: str, *, inline: bool = False
) -> Response:
    if fmt not in EXPORTS:
        raise ApiError(404, "not_found", "Export as html, pdf or epub.")
    media_type, render = EXPORTS[fmt]
    if inline:  # the page a share link opens: it may read itself aloud
        render = functools.partial(export.to_html, shared=True)
    body = await asyncio.to_thread(render, story, request.app.state.media)
    # A Chinese title as the file name (RFC 6266/5987), with an ASCII name for old clients.
    name = quote(export.filename(story, fmt))
    disposition = "inline" if inline else f"attachment; filename=\"story.{fmt}\"; filename*=UTF-8''{name}"
    headers = {"Content-Disposition": disposition}
    if inline:
        headers["Content-Security-Policy"] = SHARE_CSP
    return Response(body, media_type=media_type, headers=headers)


@router.get("/api/stories/{story_id}/export/{fmt}", response_class=Response, responses=BOOK)
async def export_story(story_id: StoryDep, fmt: str, store: StoreDep, request: Request) -> Response:
    """The story as a picture book: a self-contained HTML page, a PDF or an EPUB."""
    return await _export(request, await store.read_story(story_id), fmt)


@router.get("/api/shared/{share_id}/export/{fmt}", response_class=Response, responses=BOOK)
async def export_shared(share_id: str, fmt: str, store: StoreDep, request: Request) -> Response:
    return await _export(request, await store.shared(share_id), fmt)


@router.get("/read/{share_id}", include_in_schema=False)
async def read_shared(share_id: str, store: StoreDep, request: Request) -> Response:
    """What a shared link opens: the finished story as a page, and nothing else."""
    return await _export(request, await store.shared(share_id), "html", inline=True)


@router.get("/api/admin/usage")
async def usage(
    request: Request, store: StoreDep, authorization: Annotated[str | None, Header()] = None, days: int = 30
) -> UsageView:
    """What stories cost, per day: Moonshot tokens, jimeng calls, pictures, retries."""
    expected = request.app.state.settings.admin_token
    if expected is None:
        raise ApiError(404, "not_found", "Operator endpoints are off: set ADMIN_TOKEN to use them.")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(403, "forbidden", "This needs the operator's ADMIN_TOKEN as a Bearer token.")
    return await store.usage(days=max(1, min(days, 366)))


class Alive(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    # broker, store, media: "ok" or why not, and what to check.
    checks: dict[str, str]


@router.get("/healthz")
async def healthz() -> Alive:
    return Alive()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(service: ServiceDep, request: Request) -> Response:
    checks: dict[str, str] = {}
    checks["broker"] = (
        "ok"
        if service.bus.connected()
        else ("unreachable: the gateway cannot reach RabbitMQ at RABBITMQ_URL")
    )
    try:
        await service.store.ping()
        checks["store"] = "ok"
    except Exception as exc:  # any driver error means not ready; the reason is shown
        checks["store"] = f"unusable: {type(exc).__name__}: check DATABASE_URL"
    checks["media"] = await asyncio.to_thread(request.app.state.media.check, write=False)
    ready = all(v == "ok" for v in checks.values())
    READY.set(1 if ready else 0)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
