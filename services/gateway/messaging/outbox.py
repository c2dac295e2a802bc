"""Work a transaction wrote to the outbox, published after its commit.

A transaction's work is published at once by the request that wrote it; work still
unpublished after a grace (the gateway died in between, or the broker was away) is
published by this relay, from whichever replica runs it first. Each row is marked
published as soon as the broker confirms it, so a failure half-way through a batch
republishes only the rows the broker never took.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from faststream.rabbit import RabbitBroker

from services.common.bus import publish_work
from services.common.topology import Topology
from services.gateway.store.models import Outbox

log = logging.getLogger(__name__)

RELAY_EVERY = 2.0
# Work older than this and still unpublished is published again by the relay. Long
# enough that a busy store's "published" mark lands first (a shorter grace
# republished a third of all pages under 200 readers).
RELAY_GRACE = timedelta(seconds=30)


class OutboxStore(Protocol):
    async def pending_outbox(self, *, older_than: timedelta, limit: int = 100) -> list[Outbox]: ...

    async def mark_published(self, ids: Sequence[int]) -> None: ...


class OutboxRelay:
    def __init__(self, *, broker: RabbitBroker, topology: Topology, store: OutboxStore) -> None:
        self.broker, self.topo, self.store = broker, topology, store

    async def publish(self, rows: Sequence[Outbox]) -> None:
        """Publish rows in order, each marked as soon as the broker has it; the first
        failure stops the batch (the rest wait for the relay)."""
        for row in rows:
            headers = {"story_id": row.story_id}
            await publish_work(self.broker, self.topo, row.body, routing_key=row.routing_key, headers=headers)
            await self.store.mark_published([row.id])

    async def relay_once(self) -> None:
        try:
            rows = await self.store.pending_outbox(older_than=RELAY_GRACE)
            if rows:
                log.info("relaying %d unpublished task(s) from the outbox", len(rows))
                await self.publish(rows)
        except Exception:
            log.warning("outbox relay will retry", exc_info=True)
