"""Each fake runs as a real HTTP server on a free loopback port, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest

from services.fakes import ark, jimeng, moonshot
from services.fakes.serving import BackgroundServer

KEY = "sk-test-key"

# Fast enough for tests; the pacing itself has its own test.
FAST_MOONSHOT = moonshot.MoonshotConfig(api_key=KEY, ttft=0.0, tps=0.0)
# Failure timings of the real server (15 s, 30 s) shrunk 100 times; they have their own test.
FAST_JIMENG = jimeng.JimengConfig(image_seconds=0.0, time_scale=0.01)
ARK_KEY = "ark-test-key-0042"
FAST_ARK = ark.ArkConfig(image_seconds=0.0, keys=frozenset({ARK_KEY}))


def _starter(create_app: Callable[[Any], Any], base: Any) -> Iterator[Callable[..., BackgroundServer]]:
    """Starts fakes built from `base` with the test's changes; stops them all afterwards."""
    servers: list[BackgroundServer] = []

    def start(**changes: Any) -> BackgroundServer:
        server = BackgroundServer(create_app(replace(base, **changes)))
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_moonshot() -> Iterator[Callable[..., BackgroundServer]]:
    yield from _starter(moonshot.create_app, FAST_MOONSHOT)


@pytest.fixture
def start_jimeng() -> Iterator[Callable[..., BackgroundServer]]:
    yield from _starter(jimeng.create_app, FAST_JIMENG)


@pytest.fixture
def start_ark() -> Iterator[Callable[..., BackgroundServer]]:
    yield from _starter(ark.create_app, FAST_ARK)


@pytest.fixture
def ark_server(start_ark: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_ark()


@pytest.fixture
def moonshot_server(start_moonshot: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_moonshot()


@pytest.fixture
def jimeng_server(start_jimeng: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_jimeng()


@pytest.fixture
async def llm(moonshot_server: BackgroundServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{moonshot_server.url}/v1", api_key=KEY, max_retries=0, timeout=10)
    yield client
    await client.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        yield client
