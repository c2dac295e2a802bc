"""What both fakes share: the fault queue, its control routes, and running the server."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# ------------------------------------------------------------------------ faults


@dataclass(frozen=True)
class Fault:
    mode: str
    # Meaning depends on the mode: the retry hint of a rate limit, the length of a
    # stall or hang. None means the mode's own default.
    seconds: float | None = None


class FaultQueue:
    """Faults waiting for the next requests, oldest first.

    A fault with count N is served to N requests, one each; a test that queues two
    different faults sees them in the order it queued them. A fault `lasting` S seconds
    is served to every request for S seconds from when it was queued, however many
    come: an upstream rate limit or outage is a stretch of time, not a number of calls.
    """

    def __init__(self, modes: Collection[str]) -> None:
        self.modes = tuple(modes)
        # (fault, requests left, or the monotonic time it ends for a lasting fault)
        self._queue: list[tuple[Fault, int, float | None]] = []
        self.served: Counter[str] = Counter()

    def add(
        self, mode: str, *, count: int = 1, seconds: float | None = None, lasting: float | None = None
    ) -> None:
        if mode not in self.modes:
            raise ValueError(f"unknown fault mode {mode!r}; known modes: {', '.join(self.modes)}")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if lasting is not None and lasting <= 0:
            raise ValueError(f"lasting must be a positive number of seconds, got {lasting}")
        until = None if lasting is None else time.monotonic() + lasting
        self._queue.append((Fault(mode, seconds), count, until))

    def take(self) -> Fault | None:
        while self._queue:
            fault, left, until = self._queue[0]
            if until is not None:
                if time.monotonic() >= until:
                    self._queue.pop(0)
                    continue
            elif left <= 1:
                self._queue.pop(0)
            else:
                self._queue[0] = (fault, left - 1, None)
            self.served[fault.mode] += 1
            return fault
        return None

    def clear(self) -> None:
        self._queue.clear()

    def as_dict(self) -> dict[str, Any]:
        """What /_fake/stats says of the faults: those served so far, and those waiting."""
        return {"faults_served": dict(self.served), "pending_faults": self.pending()}

    def pending(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out: list[dict[str, Any]] = []
        for fault, left, until in self._queue:
            if until is None:
                out.append({"mode": fault.mode, "count": left, "seconds": fault.seconds})
            elif until > now:
                out.append({"mode": fault.mode, "lasting": round(until - now, 3), "seconds": fault.seconds})
        return out


def parse_fault_arg(value: str) -> tuple[str, int]:
    """`MODE` or `MODE:COUNT`, for the repeatable `--fault` flag."""
    mode, _, count = value.partition(":")
    try:
        return mode, int(count) if count else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MODE[:COUNT], got {value!r}") from None


def add_fault_routes(app: FastAPI, faults: FaultQueue) -> None:
    """`POST /_fake/faults {"mode", "count" | "lasting", "seconds"}` queues, `DELETE` clears."""

    @app.post("/_fake/faults")
    async def queue_fault(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            mode = body["mode"]
            count = int(body.get("count", 1))
            seconds = body.get("seconds")
            lasting = body.get("lasting")
            faults.add(
                mode,
                count=count,
                seconds=None if seconds is None else float(seconds),
                lasting=None if lasting is None else float(lasting),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A test that asks for a fault the fake does not know must fail loudly,
            # not run against a healthy fake and pass for the wrong reason.
            message = f"bad fault request: {exc}; send {{'mode': one of {list(faults.modes)}}}"
            return JSONResponse({"error": message}, status_code=400)
        return JSONResponse({"pending": faults.pending()})

    @app.delete("/_fake/faults")
    async def clear_faults() -> JSONResponse:
        faults.clear()
        return JSONResponse({"pending": []})


class FakeConfig(Protocol):
    @property
    def faults(self) -> Sequence[tuple[str, int]]:
        """(mode, count) queued at start, as `--fault MODE[:COUNT]` does."""
        ...


class FakeStats(Protocol):
    @property
    def in_flight(self) -> InFlight: ...


def fake_app(
    title: str, config: FakeConfig, stats: FakeStats, *, modes: Collection[str], paths: Collection[str]
) -> tuple[FastAPI, FaultQueue]:
    """A fake's app with what every fake has: the faults its config queues at start or a
    test queues later, and the slow calls (to `paths`) counted in its stats while they
    are served. No docs routes: the real services have none, and a client that found
    them would be relying on the fake."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    faults = FaultQueue(modes)
    for mode, count in config.faults:
        faults.add(mode, count=count)
    add_fault_routes(app, faults)
    count_in_flight(app, stats.in_flight, paths)
    return app, faults


def shorten(value: Any, *, limit: int = 200) -> Any:
    """A request body fit for /_fake/stats: data URIs and long texts cut down."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}…({len(value)} chars)"
    if isinstance(value, list):
        return [shorten(v, limit=limit) for v in value]
    if isinstance(value, dict):
        return {k: shorten(v, limit=limit) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------ in flight


class InFlight:
    """Upstream requests being served right now, the most at once, and the integral of
    that count over time.

    The integral (`in_flight_seconds`) is what makes a time-weighted mean exact: between
    two reads of /_fake/stats it is Δ in_flight_seconds / Δ clock, with no sampling. The
    first and the latest request start are kept with the integral at that moment, so the
    mean over "while requests were still starting" needs no reads at those instants.
    Times are time.monotonic() of this host: another process on the same Linux host can
    compare them with its own clock. Everything runs on the server's one event loop.
    """

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.peak_at: float | None = None  # when `peak` was first reached
        self.area = 0.0  # request-seconds served so far
        self.first_start: tuple[float, float] | None = None  # (clock, area) at that moment
        self.last_start: tuple[float, float] | None = None
        self._since = time.monotonic()

    def _advance(self) -> float:
        now = time.monotonic()
        self.area += self.now * (now - self._since)
        self._since = now
        return now

    def enter(self) -> None:
        at = self._advance()
        self.now += 1
        if self.first_start is None:
            self.first_start = (at, self.area)
        self.last_start = (at, self.area)
        if self.now > self.peak:
            self.peak, self.peak_at = self.now, at

    def leave(self) -> None:
        self._advance()
        self.now -= 1

    def as_dict(self) -> dict[str, Any]:
        def mark(value: tuple[float, float] | None) -> dict[str, float] | None:
            return None if value is None else {"at": value[0], "in_flight_seconds": value[1]}

        clock = self._advance()  # first: the integral must be the one at `clock`
        return {
            "in_flight": self.now,
            "peak_in_flight": self.peak,
            "peak_in_flight_at": self.peak_at,
            "in_flight_seconds": self.area,
            "clock": clock,
            "first_start": mark(self.first_start),
            "last_start": mark(self.last_start),
        }


class CountInFlight:
    """ASGI middleware: a request to one of `paths` counts from its arrival until its
    response has been sent in full or its client has gone; a stream counts until it ends."""

    def __init__(self, app: ASGIApp, *, counter: InFlight, paths: Collection[str]) -> None:
        self.app, self.counter, self.paths = app, counter, frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        self.counter.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.leave()


def count_in_flight(app: FastAPI, counter: InFlight, paths: Collection[str]) -> None:
    """Count the requests to `paths` in `counter` (before the app starts serving)."""
    app.add_middleware(CountInFlight, counter=counter, paths=paths)


# ------------------------------------------------------------------------ serving


def _config(app: FastAPI, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        # No websockets and no lifespan: neither fake needs them, and skipping them
        # keeps third-party deprecation warnings out of a test run that treats
        # warnings as errors.
        ws="none",
        lifespan="off",
        # A stalled stream or hung request must not keep a stopping fake alive.
        timeout_graceful_shutdown=1,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one, and the caller reads which."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening before the banner is printed means a harness that connects as soon
    # as it reads the banner waits in the backlog instead of being refused.
    sock.listen(2048)
    return sock


def run(app: FastAPI, *, host: str, port: int, name: str, path: str = "") -> None:
    """Serve until interrupted; print the one line a harness waits for."""
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    print(f"fake {name} listening on http://{host}:{bound}{path}", flush=True)
    uvicorn.Server(_config(app, "warning")).run(sockets=[sock])


class BackgroundServer:
    """A fake served from a thread of this process, on a free loopback port.

    For tests and the e2e harness: `with BackgroundServer(create_app(cfg)) as s:`
    then talk to `s.url`.
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(_config(app, "error"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, *, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            deadline.wait(0.01)
        if not self._server.started:
            raise RuntimeError(f"fake server on {self.url} did not start within {timeout} s")
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fake_parser(name: str, *, description: str, port: int) -> argparse.ArgumentParser:
    """A fake's command line: where it listens; its own options are added after."""
    parser = argparse.ArgumentParser(prog=f"python -m services.fakes.{name}", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help="0 picks a free port")
    return parser


def add_fault_option(parser: argparse.ArgumentParser, modes: Sequence[str]) -> None:
    """`--fault MODE[:COUNT]`, the same on both fakes."""
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=parse_fault_arg,
        metavar="MODE[:COUNT]",
        help=f"queue a fault at start (repeatable); modes: {', '.join(modes)}",
    )


def check_fault_modes(faults: Sequence[tuple[str, int]], modes: Sequence[str]) -> None:
    for mode, _ in faults:
        if mode not in modes:
            sys.exit(f"--fault {mode}: unknown mode; known modes: {', '.join(modes)}")
