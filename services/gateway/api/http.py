"""HTTP routes: stories, choices, redraws, health."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import tempfile
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from services.common.metrics import READY
from services.gateway import export
from services.gateway.api.errors import ApiError, validation_message
from services.gateway.guards import SHARE_CSP
from services.gateway.hub import Hub
from services.gateway.store.repo import Store
from services.gateway.stories import Choice, NewStory, StoryService, unstorable

router = APIRouter()


def get_service(request: Request) -> StoryService:
    service: StoryService = request.app.state.service
    return service


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


ServiceDep = Annotated[StoryService, Depends(get_service)]
StoreDep = Annotated[Store, Depends(get_store)]


def bearer(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization:
        raise ApiError(
            401,
            "unauthorized",
            "This call needs the story's token: send the header 'Authorization: Bearer <token>'.",
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


TokenDep = Annotated[str, Depends(bearer)]


# A page number in a path: far above any story's length, far below what a database
# integer holds (an overflowing one must be a 422, not a dropped connection).
PageNumber = Annotated[int, Path(ge=0, le=10_000)]


def _json_only(request: Request) -> None:
    # A form or text/plain POST can be sent by any web page without asking first;
    # a JSON one cannot. So state-changing calls take JSON and nothing else.
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"This call takes a JSON body, not {ctype or 'a body without a type'}; "
            "send it with the header 'Content-Type: application/json'.",
        )


async def json_body(request: Request, model: type[Any]) -> Any:
    """Parse the body ourselves so every bad body gets the same clear error."""
    _json_only(request)
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except RecursionError:
        raise ApiError(
            422, "invalid_input", "The body is nested too deeply; send a flat JSON object."
        ) from None
    except (ValueError, UnicodeDecodeError):
        # ValueError also covers numbers with more digits than Python converts.
        raise ApiError(422, "invalid_input", "The body is not valid JSON; send a JSON object.") from None
    if (problem := unstorable(data)) is not None:
        raise ApiError(422, "invalid_input", f"The body {problem}; remove it and send it again.")
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", 'The body must be a JSON object, e.g. {"premise": "..."}.')
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", validation_message(exc)) from None


@router.post("/api/stories", status_code=201)
async def create_story(request: Request, service: ServiceDep) -> dict[str, str]:
    req: NewStory = await json_body(request, NewStory)
    client = request.client.host if request.client else "unknown"
    story_id, token = await service.create(req, client=client)
    return {"story_id": story_id, "token": token}


@router.get("/api/stories/{story_id}")
async def read_story(story_id: str, token: TokenDep, store: StoreDep, request: Request) -> dict[str, Any]:
    await store.authorize(story_id, token)
    story = await store.read_story(story_id)
    hub: Hub = request.app.state.hub
    for page in story["pages"]:
        # A page being written shows what is written so far (as the socket would).
        partial = hub.partial(story_id, page["index"]) if page["status"] == "writing" else None
        if partial is not None:
            page["text"] = partial.text
    return story


@router.post("/api/stories/{story_id}/choices", status_code=202)
async def choose(story_id: str, request: Request, token: TokenDep, service: ServiceDep) -> dict[str, str]:
    await service.store.authorize(story_id, token)
    req: Choice = await json_body(request, Choice)
    await service.choose(story_id, req)
    return {"status": "accepted"}


@router.post("/api/stories/{story_id}/pages/{page}/image/retry", status_code=202)
async def redraw(story_id: str, page: PageNumber, token: TokenDep, service: ServiceDep) -> dict[str, str]:
    await service.store.authorize(story_id, token)
    await service.redraw(story_id, page)
    return {"status": "accepted"}


@router.post("/api/stories/{story_id}/sheet/retry", status_code=202)
async def redraw_sheet(story_id: str, token: TokenDep, service: ServiceDep) -> dict[str, str]:
    """Draw the characters again after their picture failed; pages drawn next use it."""
    await service.store.authorize(story_id, token)
    await service.redraw_sheet(story_id)
    return {"status": "accepted"}


@router.post("/api/stories/{story_id}/pages/{page}/retry", status_code=202)
async def retry_page(story_id: str, page: PageNumber, token: TokenDep, service: ServiceDep) -> dict[str, str]:
    await service.store.authorize(story_id, token)
    await service.retry(story_id, page)
    return {"status": "accepted"}


class LibraryEntry(BaseModel):
    story_id: str = Field(max_length=64)
    token: str = Field(max_length=128)


class Library(BaseModel):
    stories: list[LibraryEntry] = Field(max_length=100)


@router.post("/api/library")
async def library(request: Request, store: StoreDep) -> dict[str, Any]:
    """This device's stories, by the tokens it holds; unknown or wrong pairs are left out."""
    req: Library = await json_body(request, Library)
    return {"stories": await store.summaries([(e.story_id, e.token) for e in req.stories])}


@router.post("/api/stories/{story_id}/share", status_code=201)
async def share(story_id: str, token: TokenDep, store: StoreDep) -> dict[str, str]:
    await store.authorize(story_id, token)
    share_id = await store.share(story_id)
    return {"share_id": share_id, "url": f"/read/{share_id}"}


@router.get("/api/shared/{share_id}")
async def shared(share_id: str, store: StoreDep) -> dict[str, Any]:
    return await store.shared(share_id)


EXPORTS = {
    "html": ("text/html; charset=utf-8", export.to_html),
    "pdf": ("application/pdf", export.to_pdf),
    "epub": ("application/epub+zip", export.to_epub),
}


async def _export(request: Request, story: dict[str, Any], fmt: str, *, inline: bool = False) -> Response:
    if fmt not in EXPORTS:
        raise ApiError(404, "not_found", "Export as html, pdf or epub.")
    media_type, render = EXPORTS[fmt]
    if inline:  # the page a share link opens: it may read itself aloud
        render = functools.partial(export.to_html, shared=True)
    body = await asyncio.to_thread(render, story, request.app.state.settings.media_dir)
    # A Chinese title as the file name (RFC 6266/5987), with an ASCII name for old clients.
    name = quote(export.filename(story, fmt))
    disposition = "inline" if inline else f"attachment; filename=\"story.{fmt}\"; filename*=UTF-8''{name}"
    headers = {"Content-Disposition": disposition}
    if inline:
        headers["Content-Security-Policy"] = SHARE_CSP
    return Response(body, media_type=media_type, headers=headers)


@router.get("/api/stories/{story_id}/export/{fmt}")
async def export_story(
    story_id: str, fmt: str, token: TokenDep, store: StoreDep, request: Request
) -> Response:
    """The story as a picture book: a self-contained HTML page, a PDF or an EPUB."""
    await store.authorize(story_id, token)
    return await _export(request, await store.read_story(story_id), fmt)


@router.get("/api/shared/{share_id}/export/{fmt}")
async def export_shared(share_id: str, fmt: str, store: StoreDep, request: Request) -> Response:
    return await _export(request, await store.shared(share_id), fmt)


@router.get("/read/{share_id}", include_in_schema=False)
async def read_shared(share_id: str, store: StoreDep, request: Request) -> Response:
    """What a shared link opens: the finished story as a page, and nothing else."""
    return await _export(request, await store.shared(share_id), "html", inline=True)


@router.get("/api/admin/usage")
async def usage(
    request: Request, store: StoreDep, authorization: Annotated[str | None, Header()] = None, days: int = 30
) -> dict[str, Any]:
    """What stories cost, per day: Moonshot tokens, jimeng calls, pictures, retries."""
    expected = request.app.state.settings.admin_token
    if expected is None:
        raise ApiError(404, "not_found", "Operator endpoints are off: set ADMIN_TOKEN to use them.")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(403, "forbidden", "This needs the operator's ADMIN_TOKEN as a Bearer token.")
    return await store.usage(days=max(1, min(days, 366)))


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(request: Request, service: ServiceDep) -> Response:
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
    media = service.settings.media_dir
    try:
        with tempfile.NamedTemporaryFile(dir=media, prefix=".ready-"):
            pass
        checks["media"] = "ok"
    except OSError as exc:
        checks["media"] = f"not writable: {exc.strerror}: check MEDIA_DIR ({media})"
    ready = all(v == "ok" for v in checks.values())
    READY.set(1 if ready else 0)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
