"""What protects every request before a route sees it: security headers, a cap on
reader sockets, and a deadline for a request's headers."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

# The reader page: its own scripts, styles, pictures and socket only; no inline script,
# no other site may frame it (a story page in a hidden frame could be clicked through).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Pictures, JSON, exports: nothing in them may run or load anything.
STRICT_CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
# The page a share link opens: a finished story, and read-aloud (one script of ours).
SHARE_CSP = (
    "default-src 'none'; script-src 'self'; img-src data: 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The API's own documentation (FastAPI's Swagger UI): its script comes from a CDN and
# starts inline. It shows no reader's content, so that is all it is allowed.
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """nosniff, no framing, no referrer and a Content-Security-Policy on every HTTP answer.

    A route that knows better (the share page, an export) sets its own policy first;
    the referrer is never sent, since a shared story's address is its only key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == "/" or path.startswith("/static/"):
            csp = PAGE_CSP
        elif path == "/api/docs":
            csp = DOCS_CSP
        else:
            csp = STRICT_CSP

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ):
                    if name not in present:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


class SocketLimits:
    """Open reader sockets per story and per client address, on this gateway process.

    Every socket holds a subscription and a task; without a cap one token (or one
    address) could hold thousands of them."""

    def __init__(self, *, per_story: int, per_client: int) -> None:
        self.per_story, self.per_client = per_story, per_client
        self._stories: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()

    def refusal(self, story_id: str, client: str) -> str | None:
        """Why another socket is refused, or None when it may open."""
        if self._stories[story_id] >= self.per_story:
            return (
                f"This story already has {self.per_story} open readers here; "
                "close another tab or device reading it and try again."
            )
        if self._clients[client] >= self.per_client:
            return (
                f"Your address already has {self.per_client} open story sockets here; "
                "close some tabs and try again."
            )
        return None

    @contextmanager
    def held(self, story_id: str, client: str) -> Iterator[None]:
        self._stories[story_id] += 1
        self._clients[client] += 1
        try:
            yield
        finally:
            for counter, key in ((self._stories, story_id), (self._clients, client)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]


class _HeaderDeadline:
    """Closes a connection whose request headers are not complete in time.

    Uvicorn waits for headers forever (its keep-alive timer starts only after a
    response): a few hundred half-sent requests would hold as many connections."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None
    transport: asyncio.Transport

    def _arm(self) -> None:
        if self._deadline is None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        log.info("closed a connection whose request headers took over %.0fs", self.header_timeout)
        self.transport.close()


class GuardedHttpTools(_HeaderDeadline, HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class GuardedH11(_HeaderDeadline, H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        # Past IDLE, h11 has the whole head of the request.
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn would pick (httptools when installed), with a header deadline."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        base: type[_HeaderDeadline] = GuardedH11
    else:
        base = GuardedHttpTools
    return type(base.__name__, (base,), {"header_timeout": header_timeout})
