"""The small HTTP port every worker serves: /healthz, /readyz, /metrics.

/healthz: the process is alive. /readyz: it can do its job right now (broker
connected and its upstream usable), with the reason for every failing check, the
same JSON shape as the gateway's. /metrics: Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.logs import scrub
from services.common.metrics import READY, REGISTRY

log = logging.getLogger(__name__)

Checks = dict[str, str]


async def readiness(checks: Callable[[], Awaitable[Checks]]) -> JSONResponse:
    try:
        results = await checks()
    except Exception as exc:  # a failing check must answer "not ready", never crash
        results = {"checks": f"failed: {type(exc).__name__}"}
    # What an upstream said can carry a secret (an id, a key): never shown whole.
    results = {name: scrub(value) for name, value in results.items()}
    # "ok (…)" is ready with a remark, e.g. one of several session ids expired.
    ready = all(v == "ok" or v.startswith("ok ") for v in results.values())
    READY.set(1 if ready else 0)
    body = {"status": "ready" if ready else "not_ready", "checks": results}
    return JSONResponse(body, status_code=200 if ready else 503)


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def ops_app(checks: Callable[[], Awaitable[Checks]]) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def readyz(_: Request) -> JSONResponse:
        return await readiness(checks)

    async def metrics(_: Request) -> Response:
        return metrics_response()

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    )


class OpsServer:
    """uvicorn in the worker's own event loop, beside the FastStream app."""

    def __init__(self, *, host: str, port: int, checks: Callable[[], Awaitable[Checks]]) -> None:
        config = uvicorn.Config(
            ops_app(checks), host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        # The worker's FastStream app owns SIGTERM/SIGINT; uvicorn must not take them.
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="ops-http")
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises why it could not start (port taken, ...)
            await asyncio.sleep(0.02)
        log.info("ops endpoints on port %d: /healthz /readyz /metrics", self.server.config.port)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 5)
