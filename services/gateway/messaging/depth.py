"""How much work waits in every queue, read every few seconds: for /metrics, and for
admission (a new story is refused with 503 while too many pages wait to be written)."""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractChannel

from services.common.amqp import Link
from services.common.metrics import QUEUE_CONSUMERS, QUEUE_MESSAGES
from services.common.topology import Topology

log = logging.getLogger(__name__)

DEPTH_EVERY = 2.0


class QueueDepths:
    def __init__(self, *, link: Link, topology: Topology) -> None:
        self.link, self.topo = link, topology
        # Pages waiting to be written, as last read from the broker (-1: unknown yet).
        self.llm = -1
        self._channel: AbstractChannel | None = None

    async def read_once(self) -> None:
        """Every queue's depth and consumers, by passive declares (which change nothing).
        All are exported, so one dashboard shows where work piles up."""
        if not self.link.connected:
            return
        try:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self.link.channel()
            for name in self.topo.all_queue_names:
                queue = await self._channel.declare_queue(name, passive=True)
                found = queue.declaration_result
                QUEUE_MESSAGES.labels(name).set(found.message_count or 0)
                QUEUE_CONSUMERS.labels(name).set(found.consumer_count or 0)
                if name == self.topo.llm_queue.name:
                    self.llm = int(found.message_count or 0)
        except Exception:
            self._channel = None  # a passive declare of a missing queue closes the channel
            log.debug("queue depths not read this time", exc_info=True)
