"""This replica's live queue: the live frames of the stories its own sockets read.

The queue is bound with `story.<id>` while at least one socket here reads that story,
so a fleet of gateways shares the live traffic instead of each handling all of it.
A socket follows its story before it replays from the store (ws.py): whatever is
stored after the replay's read arrives live, and what arrives twice is dropped by
`seq`. The binding of a story whose last socket left is kept for UNBIND_AFTER
seconds, then removed by a sweep: a reader who reloads the page or reconnects keeps
the page being written, streamed from its start (an unbind forgets it).

After a broker restart aio-pika declares the queue again with the bindings it knows;
the replica then binds every story it follows once more (a bind that failed while
the broker was away included) and its sockets catch up from the store: whatever was
published while no queue existed is there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from services.common import contracts as c
from services.common.amqp import Link
from services.common.metrics import LIVE_DELAY, LIVE_RECEIVED, LIVE_STORIES
from services.common.topology import Topology, live_routing_key
from services.gateway.hub import Hub

log = logging.getLogger(__name__)

# Seconds a bind or an unbind may take before the sweep is left to try again.
BIND_TIMEOUT = 5.0
# Seconds a story stays bound after its last socket here left (a reload, a reconnect).
UNBIND_AFTER = 10.0


class LiveFeed:
    def __init__(self, *, link: Link, topology: Topology, replica: str, hub: Hub) -> None:
        self.link, self.topo, self.replica, self.hub = link, topology, replica, hub
        self.readers: Counter[str] = Counter()
        self.bound: set[str] = set()
        # When the last socket of a story still bound left (time.monotonic()).
        self.left: dict[str, float] = {}
        self._binding = asyncio.Lock()
        self._queue: AbstractQueue | None = None

    async def start(self) -> None:
        channel = await self.link.channel(confirms=False)
        # Bounded, so a replica that falls behind keeps bounded memory: frames it could
        # not take wait in its queue (and past its length or age, readers mend from the store).
        await channel.set_qos(prefetch_count=256)
        ex = self.topo.live_exchange
        await channel.declare_exchange(ex.name, type=ex.type.value, durable=ex.durable)
        q = self.topo.live_queue(self.replica)
        self._queue = await channel.declare_queue(
            q.name, exclusive=True, auto_delete=True, arguments=q.arguments
        )
        await self._queue.consume(self._on_message, no_ack=True)
        self.link.on_reconnected(self._after_reconnect)

    async def follow(self, story_id: str) -> None:
        """Receive the story's live frames from now on (returns once the broker bound it,
        or, with the broker away, once that is left to the sweep)."""
        self.readers[story_id] += 1
        self.left.pop(story_id, None)
        if story_id not in self.bound:
            async with self._binding:
                await self._bind(story_id)

    def leave(self, story_id: str) -> None:
        """One socket fewer reads the story; a sweep unbinds it once none has for a while."""
        self.readers[story_id] -= 1
        if self.readers[story_id] <= 0:
            del self.readers[story_id]
            self.left[story_id] = time.monotonic()

    async def sweep(self) -> None:
        """Unbind the stories nobody here has read for UNBIND_AFTER, and bind those a failed
        bind left out."""
        if not self.link.connected:
            return  # the reconnect binds what is read then
        async with self._binding:
            since = time.monotonic() - UNBIND_AFTER
            for story_id in [s for s in self.bound if s not in self.readers and self.left.get(s, 0) <= since]:
                await self._unbind(story_id)
            for story_id in [s for s in self.readers if s not in self.bound]:
                if await self._bind(story_id):
                    # Its sockets replayed without live frames: they read the gap now.
                    self.hub.resync(story_id)
        LIVE_STORIES.set(len(self.bound))

    async def _bind(self, story_id: str) -> bool:
        if story_id in self.bound or self._queue is None:
            return story_id in self.bound
        try:
            async with asyncio.timeout(BIND_TIMEOUT):
                await self._queue.bind(self._exchange_name, live_routing_key(story_id))
        except Exception as exc:
            log.warning(
                "could not follow a story's live frames (%s); its readers are served from the "
                "store until the broker answers again",
                type(exc).__name__,
                extra={"story_id": story_id},
            )
            return False
        self.bound.add(story_id)
        return True

    async def _unbind(self, story_id: str) -> None:
        if self._queue is None:
            return
        try:
            async with asyncio.timeout(BIND_TIMEOUT):
                await self._queue.unbind(self._exchange_name, live_routing_key(story_id))
        except Exception as exc:
            # Still bound: its frames arrive and are dropped here; the next sweep tries again.
            log.info("a story's live binding stays until the next sweep (%s)", type(exc).__name__)
            return
        self.bound.discard(story_id)
        self.left.pop(story_id, None)
        # Its page text being written would go stale here while unbound.
        self.hub.forget(story_id)

    @property
    def _exchange_name(self) -> str:
        return self.topo.live_exchange.name

    async def _after_reconnect(self) -> None:
        log.warning("reconnected to the broker; readers catch up from the store")
        async with self._binding:
            # Bind again what the restored queue may lack (a bind is idempotent).
            self.bound.clear()
            for story_id in list(self.readers):
                await self._bind(story_id)
        self.hub.resync_all()

    async def _on_message(self, msg: AbstractIncomingMessage) -> None:
        # Live frames are a courtesy: taken without acknowledgement, a lost one is
        # replayed from the store, so they need none of the work queues' settling.
        LIVE_RECEIVED.inc()
        try:
            item = c.live_adapter.validate_json(msg.body)
        except ValueError:
            log.error("malformed live message ignored")
            return
        _observe_delay(item)
        self.hub.dispatch(item)


def _observe_delay(item: c.TextDelta | c.TextReset | c.SyncHint | c.LiveEvent) -> None:
    """How long the frame took from its making to here (both clocks are this fleet's)."""
    if isinstance(item, c.TextDelta) and item.ts:
        LIVE_DELAY.labels("delta").observe(max(0.0, time.time() - item.ts))
    elif isinstance(item, c.LiveEvent) and isinstance(at := item.data.get("at"), str):
        try:
            made = datetime.fromisoformat(at).timestamp()
        except ValueError:
            return
        LIVE_DELAY.labels("event").observe(max(0.0, time.time() - made))
