"""The reader's WebSocket: replay what was missed, then live, each durable event once.

Order of work on connect: subscribe to this replica's hub first, then replay from
the store every event with seq > after, then drain the live queue. A live event with
a seq already sent is dropped; one that skips ahead (another replica stored events
in between) makes us read the gap from the store. So a reader sees every durable
event exactly once and in order, whichever replica wrote it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from services.common import events as ev
from services.gateway.api.errors import error_response, status_of, validation_message
from services.gateway.guards import SocketLimits
from services.gateway.hub import SYNC, Hub, Subscription
from services.gateway.store.errors import StoreError
from services.gateway.store.repo import Store
from services.gateway.stories import Choice, StoryService, unstorable

log = logging.getLogger(__name__)
router = APIRouter()


@router.websocket("/ws/stories/{story_id}")
async def story_socket(websocket: WebSocket, story_id: str) -> None:
    app = websocket.app
    store: Store = app.state.store
    hub: Hub = app.state.hub
    service: StoryService = app.state.service
    token = websocket.query_params.get("token")
    if not origin_allowed(websocket, app.state.settings.allowed_origins):
        await _deny(
            websocket,
            403,
            "forbidden_origin",
            "This page may not open a story socket here; add its origin to ALLOWED_ORIGINS.",
        )
        return
    try:
        after = int(websocket.query_params.get("after", "0"))
        # Bounded so it fits a database integer: beyond that it is no seq ever sent.
        if not 0 <= after < 2**31:
            raise ValueError
    except ValueError:
        await _deny(
            websocket,
            422,
            "invalid_input",
            "after must be a whole number from 0 to 2147483647 (the last seq you saw).",
        )
        return
    if not token:
        await _deny(websocket, 401, "unauthorized", "Connect with ?token=<the story's token>.")
        return
    try:
        await store.authorize(story_id, token)
    except StoreError as exc:
        await _deny(websocket, status_of(exc), exc.code, exc.message)
        return

    sockets: SocketLimits = app.state.sockets
    client = websocket.client.host if websocket.client else "unknown"
    if (why := sockets.refusal(story_id, client)) is not None:
        await _deny(websocket, 429, "too_many_sockets", why)
        return
    with sockets.held(story_id, client):
        await websocket.accept()
        sub = hub.subscribe(story_id)
        try:
            session = _Session(websocket, store, hub, service, story_id, after)
            await session.run(sub)
        except WebSocketDisconnect:
            pass
        finally:
            hub.unsubscribe(sub)


def origin_allowed(websocket: WebSocket, allowed: str) -> bool:
    """Browsers always send Origin: only our own page (or a configured one) may connect.

    A client without Origin is not a browser, so no other site's page is acting
    through it; its token still decides what it can read.
    """
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    listed = {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}
    if "*" in listed or origin.rstrip("/") in listed:
        return True
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def _deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    # Refuse the handshake with a real HTTP status and our error body where the
    # server supports it; otherwise close with a 4xxx code carrying the reason.
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(status, code, message))
    else:
        await websocket.close(code=4000 + status, reason=message[:120])


class _Session:
    def __init__(
        self,
        ws: WebSocket,
        store: Store,
        hub: Hub,
        service: StoryService,
        story_id: str,
        after: int,
    ) -> None:
        self.ws, self.store, self.hub, self.service = ws, store, hub, service
        self.story_id = story_id
        self.last = after
        self.text_done: set[int] = set()

    async def run(self, sub: Subscription) -> None:
        await self._catch_up()
        # Pages being written right now: what this replica has of them, from offset 0.
        for page, partial in self.hub.partials(self.story_id):
            if page not in self.text_done:
                delta = ev.PageTextDelta(page=page, attempt=partial.attempt, offset=0, delta=partial.text)
                await self._send(delta.frame())
        reader = asyncio.create_task(self._read_client())
        writer = asyncio.create_task(self._write_live(sub))
        overflow = asyncio.create_task(sub.overflowed.wait())
        tasks = {reader, writer, overflow}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if overflow in done:
            with contextlib.suppress(Exception):
                await self.ws.close(code=1013, reason="too far behind; reconnect with after")
        for task in done:
            exc = task.exception() if not task.cancelled() else None
            if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                log.warning("socket closed on error: %r", exc, extra={"story_id": self.story_id})

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def _send_event(self, frame: dict[str, Any]) -> None:
        page = frame.get("page")
        if frame["type"] == ev.PageTextDone.type and isinstance(page, int):
            self.text_done.add(page)
        elif frame["type"] == ev.PageStarted.type and isinstance(page, int):
            self.text_done.discard(page)
        await self._send(frame)
        self.last = int(frame["seq"])

    async def _catch_up(self) -> None:
        while True:
            events = await self.store.events_after(self.story_id, self.last)
            for frame in events:
                await self._send_event(frame)
            if len(events) < 500:
                return

    async def _write_live(self, sub: Subscription) -> None:
        while True:
            frame = await sub.queue.get()
            seq = frame.get("seq")
            if frame["type"] == SYNC:
                if frame["last_seq"] is None or frame["last_seq"] > self.last:
                    await self._catch_up()
                continue
            if seq is None:
                page = frame.get("page")
                if page not in self.text_done:
                    await self._send(frame)
                continue
            if seq <= self.last:
                continue
            if seq > self.last + 1:
                await self._catch_up()
                if seq <= self.last:
                    continue
            await self._send_event(frame)

    async def _read_client(self) -> None:
        while True:
            raw = await self.ws.receive_text()
            try:
                msg = json.loads(raw)
                if not isinstance(msg, dict) or unstorable(msg) is not None:
                    raise ValueError("not an object of plain text")
            except (ValueError, RecursionError):
                await self._error(
                    "invalid_input", 'Send JSON objects like {"type": "choose", "page": 0, "choice": 1}.'
                )
                continue
            kind = msg.get("type")
            if kind == "ping":
                await self._send({"type": "pong"})
                continue
            if kind not in ("choose", "act"):
                await self._error("invalid_input", 'type must be "choose" or "act".')
                continue
            payload = {"page": msg.get("page")}
            if kind == "choose":
                payload["choice"] = msg.get("choice")
            else:
                payload["action"] = msg.get("text")
            try:
                await self.service.choose(self.story_id, Choice.model_validate(payload))
            except ValidationError as exc:
                await self._error("invalid_input", validation_message(exc))
            except StoreError as exc:
                await self._error(exc.code, exc.message)

    async def _error(self, code: str, message: str) -> None:
        await self._send(ev.SocketError(error=ev.ErrorInfo(code=code, message=message)).frame())
