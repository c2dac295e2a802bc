"""What the gateway consumes: worker results, dead tasks, and the live fan-out.

- `gateway.results` (shared by all replicas): each result is applied to the store
  once, its events get their `seq`, and they are published on the live exchange.
- `dead.notify`: a task the broker gave up (it killed its consumer again and again)
  fails its page or picture, so no reader waits forever. A dead letter whose worker
  told the reader already (`x-reported`) changes nothing: every failure is reported once.
- the replica's own live queue: every stored event and every text delta, handed to
  the sockets this replica holds (see hub.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from services.common import contracts as c
from services.common.bus import LivePublisher
from services.common.consumer import REPORTED, Delivery, consume, parser
from services.common.errors import reader_error
from services.common.topology import Topology
from services.gateway.hub import Hub
from services.gateway.store.repo import Changes, NotFound, Store

log = logging.getLogger(__name__)


class Results:
    """Applies results to the store and publishes what they changed."""

    def __init__(
        self, *, store: Store, live: LivePublisher, publish: Callable[[Changes], Awaitable[None]]
    ) -> None:
        self.store, self.live, self.publish = store, live, publish

    async def on_result(self, result: c.Contract, delivery: Delivery) -> None:
        await self.apply(result, resync=delivery.redelivered)

    async def apply(self, result: c.Contract, *, resync: bool) -> None:
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
            # Stored already: a frame lost on the way is replayed from the store.
            await self.live.publish(c.SyncHint(story_id=story_id, last_seq=changes.last_seq))


def failure_of(body: bytes, headers: dict[str, Any], topo: Topology) -> c.PageFailed | c.ImageFailed | None:
    """The reader's failure for a dead task that no worker reported, if it is a task."""
    if headers.get(REPORTED):
        return None
    source = str(headers.get("x-source") or "")
    code = str(headers.get("x-error-code") or "")
    try:
        if source == topo.image_key or (not source and b'"prompt"' in body):
            task = c.image_task_adapter.validate_json(body)
            err = reader_error(code if code.startswith("image_") else "image_failed")
            return c.ImageFailed(story_id=task.story_id, page=task.page, attempt=task.attempt, error=err)
        if source in (topo.llm_key, ""):
            llm = c.llm_task_adapter.validate_json(body)
            err = reader_error(code if code.startswith("llm_") else "llm_failed")
            page = llm.page if isinstance(llm, c.PageTask) else 0
            return c.PageFailed(story_id=llm.story_id, page=page, attempt=llm.attempt, error=err)
    except ValueError:
        return None  # not a task (a malformed message, a result): nothing to tell a reader
    return None


def subscribe(*, broker: RabbitBroker, topo: Topology, results: Results, hub: Hub, replica: str) -> None:
    consume(broker, topo, topo.results_queue, results.on_result, parse=parser(c.result_adapter), prefetch=32)

    async def on_dead(body: bytes, delivery: Delivery) -> None:
        result = failure_of(body, delivery.headers, topo)
        if result is not None:
            await results.apply(result, resync=False)

    dead = topo.dead_notify_queue
    consume(broker, topo, dead, on_dead, parse=bytes, prefetch=16, exchange=topo.dead_exchange)

    @broker.subscriber(
        topo.live_queue(replica),
        topo.live_exchange,
        channel=Channel(prefetch_count=256),
        ack_policy=AckPolicy.ACK_FIRST,
    )
    async def on_live(msg: RabbitMessage) -> None:
        # Live frames are a courtesy: acknowledged on arrival, a lost one is replayed
        # from the store, so they need none of the work queues' settling.
        try:
            item = c.live_adapter.validate_json(msg.body)
        except ValueError:
            log.error("malformed live message ignored")
            return
        hub.dispatch(item)
