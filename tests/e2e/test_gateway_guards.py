"""The gateway's limits hold against a client that lies or hoards: X-Forwarded-For from
an untrusted peer, many sockets on one story or from one address, half-sent requests.

Two gateway processes on the real broker, with small limits: one reached directly
(no proxy trusted), one behind a "proxy" on loopback (FORWARDED_ALLOW_IPS=127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from services.devstack.procs import Stack, StackConfig, free_port
from tests.support.broker import delete_topology
from tests.support.infra import unique
from tests.support.stack import ARTIFACTS

pytestmark = pytest.mark.e2e

LIMITS = {"CREATE_PER_MINUTE": "3", "HEADER_TIMEOUT": "1", "WS_PER_STORY": "3", "WS_PER_CLIENT": "5"}


@contextlib.contextmanager
def lone_gateway(amqp_url: str, tmp: Path, name: str, **env: str) -> Iterator[Stack]:
    prefix = unique(f"t{name}-")
    config = StackConfig(
        rabbitmq_url=amqp_url,
        prefix=prefix,
        gateway_port=free_port(),
        database_url=f"sqlite+aiosqlite:///{tmp / 'stories.db'}",
        media_dir=tmp / "media",
        log_dir=ARTIFACTS / "logs" / name,
        use_fake_moonshot=False,
        use_fake_jimeng=False,
        extra_env={"APP_ENV": "development", **LIMITS, **env},
    )
    stack = Stack(config)
    try:
        stack.start_gateway()
        yield stack
    finally:
        stack.stop_all()
        # In its own thread: the caller may be inside a running event loop.
        cleanup = threading.Thread(target=asyncio.run, args=(delete_topology(amqp_url, prefix),))
        cleanup.start()
        cleanup.join()


@pytest.fixture(scope="module")
def direct(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lone_gateway(amqp_url, tmp_path_factory.mktemp("direct"), "guards-direct") as stack:
        yield stack.gateway_url


@pytest.fixture(scope="module")
def proxied(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lone_gateway(
        amqp_url, tmp_path_factory.mktemp("proxied"), "guards-proxied", FORWARDED_ALLOW_IPS="127.0.0.1"
    ) as stack:
        yield stack.gateway_url


async def create(base: str, client: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        headers = {"X-Forwarded-For": client}
        return await http.post("/api/stories", json={"premise": "小熊去野餐"}, headers=headers)


async def test_a_made_up_forwarded_for_does_not_escape_the_limit(direct: str) -> None:
    answers = [(await create(direct, f"203.0.113.{i}")).status_code for i in range(4)]
    assert answers == [201, 201, 201, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(proxied: str) -> None:
    assert [(await create(proxied, f"198.51.100.{i}")).status_code for i in range(5)] == [201] * 5
    same = [(await create(proxied, "198.51.100.200")).status_code for _ in range(4)]
    assert same == [201, 201, 201, 429]


@contextlib.asynccontextmanager
async def sockets(
    base: str, story: dict[str, str], n: int, client: str
) -> AsyncIterator[list[ClientConnection]]:
    url = f"{base.replace('http', 'ws')}/ws/stories/{story['story_id']}?token={story['token']}"
    headers = {"X-Forwarded-For": client}
    async with contextlib.AsyncExitStack() as stack:
        opened = [websockets.connect(url, additional_headers=headers) for _ in range(n)]
        yield [await stack.enter_async_context(ws) for ws in opened]


async def refused(base: str, story: dict[str, str], client: str) -> dict[str, object]:
    url = f"{base.replace('http', 'ws')}/ws/stories/{story['story_id']}?token={story['token']}"
    with pytest.raises(websockets.InvalidStatus) as denied:
        async with websockets.connect(url, additional_headers={"X-Forwarded-For": client}):
            pass
    assert denied.value.response.status_code == 429
    return dict(json.loads(denied.value.response.body or b"{}"))


async def test_sockets_are_capped_per_story_and_per_client(proxied: str) -> None:
    stories = [(await create(proxied, f"192.0.2.{i}")).json() for i in range(3)]
    async with sockets(proxied, stories[0], 3, "192.0.2.50"):
        body = await refused(proxied, stories[0], "192.0.2.51")  # another reader, same story
        assert body["error"]["code"] == "too_many_sockets"  # type: ignore[index]
        async with sockets(proxied, stories[1], 2, "192.0.2.50"):
            # Five from this address: a sixth is refused whatever the story.
            body = await refused(proxied, stories[2], "192.0.2.50")
            assert "close some tabs" in body["error"]["message"]  # type: ignore[index]
            async with sockets(proxied, stories[2], 1, "192.0.2.52"):
                pass
    # All closed: the story takes readers again.
    async with sockets(proxied, stories[0], 3, "192.0.2.50"):
        pass


def test_a_half_sent_request_is_dropped_after_the_header_timeout(direct: str) -> None:
    port = int(direct.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        slow.settimeout(6)
        assert slow.recv(1024) == b"", "the server closes the connection"
        assert time.monotonic() - started < 4
    # A client that sends its headers in pieces, in time, is served.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as fine:
        fine.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.3)
        fine.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        assert fine.recv(1024).startswith(b"HTTP/1.1 200")
