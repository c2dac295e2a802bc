"""The doctor as an operator runs it: a process, with a controlled environment, against
the real broker, the real store and real HTTP servers (the fakes, and stand-ins for
the services' /readyz)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.common.amqp import Link, declare_topology, delete_topology
from services.common.topology import Topology
from services.fakes import jimeng, moonshot
from services.fakes.serving import BackgroundServer
from tests.support.infra import unique

ROOT = Path(__file__).resolve().parents[2]

# Long enough that `mask` shows their last four characters, and easy to spot if leaked.
KEY = "sk-doctor-right-key-9f8e"
WRONG_KEY = "sk-doctor-wrong-key-7c6b"
LIVE_ID = "livesession0000a1b2"
OTHER_LIVE_ID = "livesession0000e5f6"
DEAD_ID = "deadsession0000d3ad"
SECRETS = (KEY, WRONG_KEY, LIVE_ID, OTHER_LIVE_ID, DEAD_ID)


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    def report(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.out)
        return value

    def row(self, check: str) -> dict[str, Any]:
        rows = [r for r in self.report()["checks"] if r["check"] == check]
        assert rows, f"no row {check!r} in:\n{self.out}"
        return rows[0]

    def checks(self) -> set[str]:
        return {r["check"] for r in self.report()["checks"]}

    def assert_no_secret(self) -> None:
        for secret in SECRETS:
            assert secret not in self.out and secret not in self.err, f"{secret} leaked"


async def doctor(*args: str, env: dict[str, str], cwd: Path) -> Run:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.doctor",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode(), time.monotonic() - started)


def closed_port() -> int:
    """A port nothing listens on (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_env(amqp_url: str, tmp_path: Path) -> dict[str, str]:
    """Nothing inherited (no developer's MOONSHOT_API_KEY, no proxy); cwd has no .env."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "APP_ENV": "production",
        "RABBITMQ_URL": amqp_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/stories.db",
        "GATEWAY_PORT": str(closed_port()),
        "LLM_OPS_URL": f"http://127.0.0.1:{closed_port()}",
        "IMAGE_OPS_URL": f"http://127.0.0.1:{closed_port()}",
    }


@pytest.fixture
async def prefix(amqp_url: str) -> AsyncIterator[str]:
    """A topology of our own on the shared broker, declared as the services declare it."""
    name = unique("tdoc-")
    async with Link(amqp_url) as link:
        await declare_topology(link, Topology(name))
    yield name
    await delete_topology(amqp_url, name)


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], BackgroundServer]]:
    servers: list[BackgroundServer] = []

    def start(app: FastAPI) -> BackgroundServer:
        server = BackgroundServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def jimeng_url(serve: Callable[[FastAPI], BackgroundServer]) -> str:
    config = jimeng.JimengConfig(image_seconds=0.0, dead_ids=frozenset({DEAD_ID}))
    return serve(jimeng.create_app(config)).url


@pytest.fixture
def moonshot_url(serve: Callable[[FastAPI], BackgroundServer]) -> str:
    config = moonshot.MoonshotConfig(api_key=KEY, ttft=0.0, tps=0.0)
    return f"{serve(moonshot.create_app(config)).url}/v1"


def service_app(checks: dict[str, str]) -> FastAPI:
    """A stand-in for a running service's /healthz and /readyz (same JSON as ours)."""
    app = FastAPI()
    ready = all(v == "ok" for v in checks.values())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
