"""Which JIMENG_SESSION_ID the image workers started with, and since when, on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.common.amqp import Link, declare_topology
from services.common.control import environment_since
from services.common.topology import Topology
from tests.support.broker import delete_topology
from tests.support.infra import unique


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[tuple[Link, Topology]]:
    topo = Topology(unique("tenv-"))
    link = Link(amqp_url, name="test")
    await link.connect()
    await declare_topology(link, topo)
    try:
        yield link, topo
    finally:
        await link.close()
        await delete_topology(amqp_url, topo.prefix)


async def test_each_environment_keeps_its_first_sighting(broker: tuple[Link, Topology]) -> None:
    b, topo = broker
    first = await environment_since(b, topo, ["a1"])
    assert first == 0.0, "the first environment ever recorded: nothing says when it was set"
    changed = await environment_since(b, topo, ["b2"])
    assert changed > 0.0
    # Two replicas started in turn with different values do not reset each other.
    assert await environment_since(b, topo, ["a1"]) == 0.0
    assert await environment_since(b, topo, ["b2"]) == changed
    assert await environment_since(b, topo, ["b2", "c3"]) > changed
