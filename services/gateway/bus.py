"""The gateway's side of RabbitMQ: worker results in, story events out to every replica.

- `gateway.results` (shared by all replicas): each result is applied to the store
  once, its events get their `seq`, and they are published on the live exchange.
- the replica's own live queue: every stored event and every text delta, handed to
  the sockets this replica holds (see hub.py).
- the outbox relay: work written by a transaction but not yet published (the
  gateway died in between, or the broker was away) is published later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from services.common import contracts as c
from services.common.bus import declare_topology, make_broker, parse, publish_work, settle
from services.common.topology import Topology, live_routing_key
from services.gateway.hub import Hub
from services.gateway.store.models import Outbox
from services.gateway.store.repo import Changes, NotFound, Store

log = logging.getLogger(__name__)

RELAY_EVERY = 2.0
RELAY_GRACE = timedelta(seconds=5)


class GatewayBus:
    def __init__(self, *, url: str, topology: Topology, store: Store, hub: Hub) -> None:
        self.topo = topology
        self.store = store
        self.hub = hub
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.broker: RabbitBroker = make_broker(url)
        self._relay: asyncio.Task[None] | None = None
        self._register()

    def _register(self) -> None:
        topo = self.topo

        @self.broker.subscriber(
            topo.results_queue,
            topo.work_exchange,
            channel=Channel(prefetch_count=32),
            ack_policy=AckPolicy.MANUAL,
        )
        async def on_result(msg: RabbitMessage) -> None:
            async def work() -> None:
                result = parse(c.result_adapter, msg.body)
                try:
                    changes = await self.store.apply(result)
                except NotFound:
                    log.warning("result for an unknown story dropped", extra={"story_id": result.story_id})
                    return
                await self.publish(changes)

            await settle(msg, work)

        @self.broker.subscriber(
            topo.live_queue(self.replica),
            topo.live_exchange,
            channel=Channel(prefetch_count=256),
            ack_policy=AckPolicy.ACK_FIRST,
        )
        async def on_live(msg: RabbitMessage) -> None:
            try:
                item = c.live_adapter.validate_json(msg.body)
            except ValueError:
                log.error("malformed live message ignored")
                return
            self.hub.dispatch(item)

    async def start(self) -> None:
        await self.broker.connect()
        await declare_topology(self.broker, self.topo)
        await self.broker.start()
        self._relay = asyncio.create_task(self._relay_loop(), name="outbox-relay")

    async def stop(self) -> None:
        if self._relay:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
        await self.broker.stop()

    async def connected(self) -> bool:
        return await self.broker.ping(timeout=1.0)

    async def publish(self, changes: Changes) -> None:
        """Publish what a committed transaction produced: events, then work."""
        for event in changes.events:
            await self.broker.publish(
                event,
                exchange=self.topo.live_exchange,
                routing_key=live_routing_key(event.story_id),
                mandatory=False,
            )
        await self._publish_outbox(changes.outbox)

    async def _publish_outbox(self, rows: list[Outbox]) -> None:
        done = []
        for row in rows:
            await publish_work(
                self.broker,
                self.topo,
                row.body,
                routing_key=row.routing_key,
                headers={"story_id": row.story_id},
            )
            done.append(row.id)
        await self.store.mark_published(done)

    async def _relay_loop(self) -> None:
        while True:
            await asyncio.sleep(RELAY_EVERY)
            self.hub.sweep()
            try:
                rows = await self.store.pending_outbox(older_than=RELAY_GRACE)
                if rows:
                    log.info("relaying %d unpublished task(s) from the outbox", len(rows))
                    await self._publish_outbox(rows)
            except Exception:
                log.warning("outbox relay will retry", exc_info=True)
