"""What the gateway consumes through FastStream: worker results and dead tasks.

- `gateway.results` (shared by all replicas): each result is applied to the store
  once, its events get their `seq`, and they are published on the live exchange.
- `dead.notify`: a task the broker gave up (it killed its consumer again and again)
  fails its page or picture, so no reader waits forever. A dead letter whose worker
  told the reader already (`x-reported`) changes nothing: every failure is reported once.

The replica's own live queue is consumed on the process's own link (messaging/live.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream.rabbit import RabbitBroker

from services.common import contracts as c
from services.common.bus import LivePublisher
from services.common.consumer import REPORTED, Delivery, consume, parser
from services.common.errors import reader_error
from services.common.topology import Topology
from services.gateway.messaging.batch import Batcher
from services.gateway.store.repo import Changes, Store

log = logging.getLogger(__name__)

# Publishes what committed transactions produced, in their order.
Publish = Callable[[Sequence[Changes]], Awaitable[None]]


# Most results applied in one transaction: a commit's worth of work stays short, so a
# reader's durable event never waits behind hundreds of others.
BATCH_MOST = 64


class Results:
    """Applies results to the store, in batches (messaging/batch.py), and publishes what
    they changed."""

    def __init__(self, *, store: Store, live: LivePublisher, publish: Publish) -> None:
        self.store, self.live, self.publish = store, live, publish
        self.batches: Batcher[Pending] = Batcher(self._apply_batch, most=BATCH_MOST)

    async def on_result(self, result: c.Contract, delivery: Delivery) -> None:
        await self.batches.submit(Pending(result, resync=delivery.redelivered))

    async def apply(self, result: c.Contract, *, resync: bool) -> None:
        await self.batches.submit(Pending(result, resync=resync))

    async def _apply_batch(self, batch: Sequence[Pending]) -> list[BaseException | None]:
        try:
            applied = await self.store.apply_many([p.result for p in batch])
        except Exception:
            if len(batch) == 1:
                raise
            # One result the store refuses must not hold back the others: each alone,
            # so only that one is requeued.
            log.warning("a batch of %d results failed; applying them one by one", len(batch))
            return [await self._apply_alone(p) for p in batch]
        await self.publish([c for c in applied if c is not None])
        for pending, changes in zip(batch, applied, strict=True):
            await self._after(pending, changes)
        return [None] * len(batch)

    async def _apply_alone(self, pending: Pending) -> BaseException | None:
        try:
            (changes,) = await self.store.apply_many([pending.result])
            if changes is not None:
                await self.publish([changes])
            await self._after(pending, changes)
        except Exception as exc:
            return exc
        return None

    async def _after(self, pending: Pending, changes: Changes | None) -> None:
        story_id = getattr(pending.result, "story_id", "")
        if changes is None:
            log.warning("result for an unknown story dropped", extra={"story_id": story_id})
        elif pending.resync:
            # A redelivery: whoever handled it first may have stored events and died
            # before fanning them out. Readers of this story catch up from the store.
            await self.live.publish(c.SyncHint(story_id=story_id, last_seq=changes.last_seq))


@dataclass(frozen=True)
class Pending:
    result: c.Contract
    resync: bool


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


def subscribe(*, broker: RabbitBroker, topo: Topology, results: Results) -> None:
    # Prefetch of two batches: one being applied, the next one gathering meanwhile.
    queue, on_result = topo.results_queue, results.on_result
    consume(broker, topo, queue, on_result, parse=parser(c.result_adapter), prefetch=2 * BATCH_MOST)

    async def on_dead(body: bytes, delivery: Delivery) -> None:
        result = failure_of(body, delivery.headers, topo)
        if result is not None:
            await results.apply(result, resync=False)

    dead = topo.dead_notify_queue
    consume(broker, topo, dead, on_dead, parse=bytes, prefetch=16, exchange=topo.dead_exchange)
