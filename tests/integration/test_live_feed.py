"""A replica's live queue on the real broker: bound to the stories its sockets read,
unbound after they leave, and bound again after its connection was cut."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.common import contracts as c
from services.common.amqp import Link, declare_topology
from services.common.bus import LivePublisher
from services.common.topology import Topology
from services.gateway.hub import SYNC, Hub, Subscription
from services.gateway.messaging import live as live_feed
from services.gateway.messaging.live import LiveFeed
from tests.support.broker import delete_topology
from tests.support.infra import unique


def delta(story_id: str, offset: int) -> c.TextDelta:
    return c.TextDelta(story_id=story_id, page=0, attempt=1, offset=offset, delta="字", ts=0.0)


async def frames(sub: Subscription, *, within: float) -> list[dict[str, Any]]:
    """What reaches the socket's queue within `within` seconds."""
    await asyncio.sleep(within)
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


class Replica:
    def __init__(self, url: str, topo: Topology) -> None:
        self.name = unique("r")
        self.link = Link(url, name=f"gateway {self.name}")
        self.hub = Hub(buffer=1000)
        self.feed = LiveFeed(link=self.link, topology=topo, replica=self.name, hub=self.hub)


@pytest.fixture
async def setup(amqp_url: str) -> AsyncIterator[tuple[Replica, LivePublisher]]:
    topo = Topology(unique("tlive-"))
    replica = Replica(amqp_url, topo)
    await replica.link.connect()
    await declare_topology(replica.link, topo)
    await replica.feed.start()
    async with Link(amqp_url, name="worker") as worker:
        yield replica, LivePublisher(worker, topo)
    await replica.link.close()
    await delete_topology(amqp_url, topo.prefix)


async def test_a_replica_receives_only_the_stories_its_sockets_read(
    setup: tuple[Replica, LivePublisher], monkeypatch: pytest.MonkeyPatch
) -> None:
    replica, live = setup
    read, unread = replica.hub.subscribe("read"), replica.hub.subscribe("unread")
    await replica.feed.follow("read")
    await live.publish(delta("read", 0))
    await live.publish(delta("unread", 0))
    assert [f["offset"] for f in await frames(read, within=0.5)] == [0]
    assert await frames(unread, within=0.0) == [], "a story no socket here follows is not bound"

    # The last socket leaves (a reload): a sweep at once keeps the story bound, and the
    # page being written with it, for the socket that comes back.
    replica.feed.leave("read")
    await replica.feed.sweep()
    assert replica.feed.bound == {"read"}
    await live.publish(delta("read", 1))
    assert [f["offset"] for f in await frames(read, within=0.5)] == [1]
    assert replica.hub.partial("read", 0) is not None
    # Nobody came back within UNBIND_AFTER: the sweep unbinds it, then nothing comes.
    monkeypatch.setattr(live_feed, "UNBIND_AFTER", 0.0)
    await replica.feed.sweep()
    assert replica.feed.bound == set()
    await live.publish(delta("read", 2))
    assert await frames(read, within=0.5) == []


def close_connection(name: str) -> None:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    [pid] = [line.split("\t")[0] for line in listed.splitlines() if f'"{name}"' in line or name in line]
    subprocess.run(["rabbitmqctl", "close_connection", pid, "cut by a test"], check=True, capture_output=True)


async def test_after_its_connection_is_cut_a_replica_follows_its_stories_again(
    setup: tuple[Replica, LivePublisher], amqp_url: str
) -> None:
    if not shutil.which("rabbitmqctl") or "127.0.0.1" not in amqp_url:
        pytest.skip("needs the local broker's rabbitmqctl to cut one connection")
    replica, live = setup
    read = replica.hub.subscribe("read")
    await replica.feed.follow("read")
    await asyncio.to_thread(close_connection, replica.link.name)
    # Its sockets are told to catch up from the store once the replica is back...
    async with asyncio.timeout(20):
        while not any(f["type"] == SYNC for f in await frames(read, within=0.2)):
            pass
    # ...and the story's live frames reach it again.
    await live.publish(delta("read", 5))
    assert [f["offset"] for f in await frames(read, within=0.5)] == [5]
