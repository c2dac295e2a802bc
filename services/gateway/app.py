"""Builds the gateway: HTTP API, reader WebSocket, the web page and the media it serves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import bind, register_secrets
from services.common.mediastore import FileStore, open_store
from services.common.metrics import HTTP_RESPONSES, WS_CONNECTIONS
from services.common.ops import metrics_response
from services.common.topology import Topology
from services.gateway import media
from services.gateway.api import errors, http, ws
from services.gateway.api.errors import error_response
from services.gateway.bus import GatewayBus
from services.gateway.config import GatewaySettings
from services.gateway.guards import SecurityHeaders, SocketLimits
from services.gateway.hub import Hub
from services.gateway.store.repo import Store
from services.gateway.stories import StoryService

STATIC = Path(__file__).parent / "static"


class BodyLimit:
    """Refuse request bodies over the limit before reading them into memory.

    `wider` names the few routes allowed more (a new story may carry the hero's picture)."""

    def __init__(self, app: ASGIApp, *, limit: int, wider: dict[tuple[str, str], int] | None = None) -> None:
        self.app, self.limit, self.wider = app, limit, wider or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.wider.get((scope.get("method", ""), scope.get("path", "")), self.limit)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._too_large(scope, receive, send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"The request body is larger than {limit} bytes; send less."
        response = error_response(413, "too_large", message)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: GatewaySettings) -> FastAPI:
    topology = Topology(settings.rabbitmq_prefix)
    store = Store(settings.database_url, topology=topology)
    hub = Hub(buffer=settings.ws_send_buffer)
    bus = GatewayBus(url=settings.rabbitmq_url, topology=topology, store=store, hub=hub)
    media_store = open_store(settings)
    service = StoryService(settings=settings, store=store, bus=bus, media=media_store)
    if isinstance(media_store, FileStore):
        media_store.root.mkdir(parents=True, exist_ok=True)
    register_secrets(settings.media_secrets())
    if settings.admin_token is not None:
        register_secrets([settings.admin_token.get_secret_value()])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.create_schema()
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()
            await store.close()

    app = FastAPI(
        title="Interactive Storybook gateway",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.hub = hub
    app.state.bus = bus
    app.state.service = service
    app.state.media = media_store
    app.state.sockets = SocketLimits(per_story=settings.ws_per_story, per_client=settings.ws_per_client)
    errors.install(app)
    app.include_router(http.router)
    app.include_router(ws.router)
    app.include_router(media.router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index(_: Request) -> Response:
        page = STATIC / "index.html"
        if page.is_file():
            return FileResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse("<h1>Interactive Storybook</h1><p>The reader page is missing.</p>")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        WS_CONNECTIONS.set(hub.connections)
        return metrics_response()

    _wrap(app, settings)
    return app


def _wrap(app: FastAPI, settings: GatewaySettings) -> None:
    """What every request passes through; the last added is the outermost: the request
    id and count first, then the security headers, then the body limit."""
    # A new story's body may carry the hero's picture as base64 (4 bytes per 3).
    hero_body = settings.max_body_bytes + settings.hero_max_bytes * 4 // 3
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, wider={("POST", "/api/stories"): hero_body})
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestContext)


class RequestContext:
    """A request id for every request (the caller's X-Request-ID or a new one), in every
    log line and in the headers of the work it publishes; responses counted by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = given if given.replace("-", "").isalnum() else uuid.uuid4().hex[:16]
        bind(request_id=request_id)
        path = scope.get("path", "")
        if path.startswith(("/api/stories/", "/ws/stories/")):
            bind(story_id=path.split("/")[3])
        status_holder = {"status": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if scope["type"] == "http":
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                HTTP_RESPONSES.labels(template, f"{status_holder['status'] // 100}xx").inc()
