"""The gateway's side of RabbitMQ, put together: results in, story events and work out.

Each job has its module under messaging/: what is consumed (consumers.py), the
outbox relay (outbox.py), queue depths for metrics and admission (depth.py). This
class starts and stops them, and publishes what a committed transaction produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from faststream.rabbit import RabbitBroker

from services.common.amqp import Link, declare_topology
from services.common.bus import LivePublisher, make_broker
from services.common.topology import Topology
from services.gateway.hub import Hub
from services.gateway.messaging.consumers import Results, subscribe
from services.gateway.messaging.depth import DEPTH_EVERY, QueueDepths
from services.gateway.messaging.outbox import RELAY_EVERY, OutboxRelay
from services.gateway.store.repo import Changes, Store

log = logging.getLogger(__name__)

SWEEP_EVERY = 2.0  # seconds between two sweeps of the hub's idle story channels


class GatewayBus:
    def __init__(self, *, url: str, topology: Topology, store: Store, hub: Hub) -> None:
        self.topo = topology
        self.hub = hub
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.broker: RabbitBroker = make_broker(url, service="gateway", on_reconnected=[self._on_reconnected])
        self.link = Link(url, name=f"gateway {self.replica}")
        self.live = LivePublisher(self.link, topology)
        self.outbox = OutboxRelay(broker=self.broker, topology=topology, store=store)
        self.depths = QueueDepths(link=self.link, topology=topology)
        self.results = Results(store=store, live=self.live, publish=self.publish)
        subscribe(broker=self.broker, topo=topology, results=self.results, hub=hub, replica=self.replica)
        self._loops: list[asyncio.Task[None]] = []

    @property
    def llm_depth(self) -> int:
        """Pages waiting to be written, as last read from the broker (-1: unknown yet)."""
        return self.depths.llm

    def connected(self) -> bool:
        return self.link.connected

    def _on_reconnected(self, *_: object) -> None:
        log.warning("reconnected to the broker; readers catch up from the store")
        self.hub.resync_all()

    async def start(self) -> None:
        await self.link.connect()
        await declare_topology(self.link, self.topo)
        await self.broker.start()
        self._loops = [
            _every(RELAY_EVERY, self.outbox.relay_once, name="outbox-relay"),
            _every(DEPTH_EVERY, self.depths.read_once, name="queue-depth"),
            _every(SWEEP_EVERY, _sync(self.hub.sweep), name="hub-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.stop()
        await self.link.close()

    async def publish(self, changes: Changes) -> None:
        """Publish what a committed transaction produced: events, then work."""
        for event in changes.events:
            # Stored already: a frame lost on the way is replayed from the store (gap fill).
            await self.live.publish(event)
        await self.outbox.publish(changes.outbox)


def _sync(job: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        job()

    return run


def _every(seconds: float, job: Callable[[], Awaitable[None]], *, name: str) -> asyncio.Task[None]:
    """Run `job` every `seconds` until cancelled; each job keeps its own failures."""

    async def loop() -> None:
        while True:
            await job()
            await asyncio.sleep(seconds)

    return asyncio.create_task(loop(), name=name)
