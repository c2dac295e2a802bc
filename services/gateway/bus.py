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
from services.common.bus import (
    Delivery,
    LivePublisher,
    broker_connected,
    declare_topology,
    make_broker,
    parse,
    publish_work,
    settle,
)
from services.common.errors import reader_error
from services.common.logs import bind_headers
from services.common.metrics import QUEUE_CONSUMERS, QUEUE_MESSAGES
from services.common.topology import Topology
from services.gateway.hub import Hub
from services.gateway.store.models import Outbox
from services.gateway.store.repo import Changes, NotFound, Store

log = logging.getLogger(__name__)

RELAY_EVERY = 2.0
# Work older than this and still unpublished is published again by the relay. Long
# enough that a busy store's "published" mark lands first (a shorter grace
# republished a third of all pages under 200 readers).
RELAY_GRACE = timedelta(seconds=30)
DEPTH_EVERY = 2.0


class GatewayBus:
    def __init__(self, *, url: str, topology: Topology, store: Store, hub: Hub) -> None:
        self.topo = topology
        self.store = store
        self.hub = hub
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.broker: RabbitBroker = make_broker(url, service="gateway", on_reconnected=[self._on_reconnected])
        self.live = LivePublisher(self.broker, topology)
        self._relay: asyncio.Task[None] | None = None
        self._depth_task: asyncio.Task[None] | None = None
        # Pages waiting to be written, as last read from the broker (-1: unknown yet).
        self.llm_depth = -1
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
            delivery = Delivery(self.broker, topo, msg, key=topo.results_key)

            async def work() -> None:
                bind_headers(msg.headers)
                result = parse(c.result_adapter, msg.body)
                await self._apply(result, resync=delivery.redelivered)

            await settle(delivery, work)

        @self.broker.subscriber(
            topo.dead_notify_queue,
            topo.dead_exchange,
            channel=Channel(prefetch_count=16),
            ack_policy=AckPolicy.MANUAL,
        )
        async def on_dead(msg: RabbitMessage) -> None:
            # A task that died (attempts used up, or it killed its consumer again and
            # again) must not leave its reader waiting: fail its page or picture.
            headers = dict(msg.headers or {})
            source = str(headers.get("x-source") or "")
            code = str(headers.get("x-error-code") or "")
            result: c.PageFailed | c.ImageFailed | None = None
            try:
                if source == topo.image_key or (not source and b'"prompt"' in msg.body):
                    task = c.image_task_adapter.validate_json(msg.body)
                    err = reader_error(code if code.startswith("image_") else "image_failed")
                    result = c.ImageFailed(
                        story_id=task.story_id, page=task.page, attempt=task.attempt, error=err
                    )
                elif source in (topo.llm_key, ""):
                    llm = c.llm_task_adapter.validate_json(msg.body)
                    err = reader_error(code if code.startswith("llm_") else "llm_failed")
                    page = llm.page if isinstance(llm, c.PageTask) else 0
                    result = c.PageFailed(story_id=llm.story_id, page=page, attempt=llm.attempt, error=err)
            except ValueError:
                result = None
            try:
                if result is not None:
                    await self._apply(result, resync=False)
            except Exception:
                log.exception("could not fail the dead task's page; will retry")
                await msg.nack(requeue=True)
                return
            await msg.ack()

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

    async def _apply(self, result: c.Contract, *, resync: bool) -> None:
        story_id = getattr(result, "story_id", "")
        try:
            changes = await self.store.apply(result)
        except NotFound:
            log.warning("result for an unknown story dropped", extra={"story_id": story_id})
            return
        await self.publish(changes)
        if resync:
            # A redelivery: whoever handled it first may have stored events and died
            # before fanning them out. Readers of this story catch up from the store.
            await self._live(c.SyncHint(story_id=story_id, last_seq=changes.last_seq))

    async def _live(self, message: c.Contract) -> None:
        # Stored already: a frame lost on the way is replayed from the store (gap fill).
        await self.live.publish(message)

    def _on_reconnected(self, *_: object) -> None:
        log.warning("reconnected to the broker; readers catch up from the store")
        self.hub.resync_all()

    async def start(self) -> None:
        await self.broker.connect()
        await declare_topology(self.broker, self.topo)
        await self.broker.start()
        self._relay = asyncio.create_task(self._relay_loop(), name="outbox-relay")
        self._depth_task = asyncio.create_task(self._depth_loop(), name="queue-depth")

    async def stop(self) -> None:
        for task in (self._relay, self._depth_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.broker.stop()

    def connected(self) -> bool:
        return broker_connected(self.broker)

    async def publish(self, changes: Changes) -> None:
        """Publish what a committed transaction produced: events, then work."""
        for event in changes.events:
            await self._live(event)
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

    async def _depth_loop(self) -> None:
        """Read every queue's depth and consumers every few seconds (passive declares).

        The page queue's depth bounds new stories; all of them are exported so one
        dashboard shows where work piles up.
        """
        channel = None
        while True:
            try:
                connection = self.broker._connection
                if connection is not None and self.connected():
                    if channel is None or channel.is_closed:
                        channel = await connection.channel()
                    for name in self.topo.all_queue_names:
                        queue = await channel.declare_queue(name, passive=True)
                        found = queue.declaration_result
                        QUEUE_MESSAGES.labels(name).set(found.message_count or 0)
                        QUEUE_CONSUMERS.labels(name).set(found.consumer_count or 0)
                        if name == self.topo.llm_queue.name:
                            self.llm_depth = int(found.message_count or 0)
            except Exception:
                channel = None  # a passive declare of a missing queue closes the channel
                log.debug("queue depths not read this time", exc_info=True)
            await asyncio.sleep(DEPTH_EVERY)

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
