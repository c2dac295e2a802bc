"""This process's own aio-pika connection, beside FastStream's, and what goes through it.

FastStream consumes and publishes work; a few jobs need a plain channel it does not
offer publicly: declaring the topology on a channel of its own (below), reading queue
depths with passive declares, live frames without publisher confirms, and the
operators' kept commands. They share one robust connection, opened here and nowhere
else, so no module reaches into FastStream's private attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection
from faststream.rabbit import RabbitExchange, RabbitQueue

from services.common.topology import Topology


class Link:
    """One robust connection: aio-pika reconnects it, and reopens its channels, after a
    broker restart."""

    def __init__(self, url: str, *, name: str = "") -> None:
        self.url, self.name = url, name
        self._connection: AbstractRobustConnection | None = None
        self._opening = asyncio.Lock()

    async def connect(self) -> None:
        async with self._opening:
            if self._connection is None:
                self._connection = await aio_pika.connect_robust(
                    self.url,
                    reconnect_interval=1.0,
                    client_properties={"connection_name": self.name or "storybook"},
                )

    @property
    def connected(self) -> bool:
        """Now, without waiting (a request must get its 503 at once while the broker is away)."""
        connection = self._connection
        return connection is not None and connection.connected.is_set() and not connection.is_closed

    async def channel(self, *, confirms: bool = True) -> AbstractChannel:
        if self._connection is None:
            raise RuntimeError("the broker link is not connected yet: call connect() first")
        return await self._connection.channel(publisher_confirms=confirms)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AbstractChannel]:
        """A channel for one short job, closed afterwards (a failed passive declare closes
        it anyway)."""
        channel = await self.channel()
        try:
            yield channel
        finally:
            if not channel.is_closed:
                await channel.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def __aenter__(self) -> Link:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def _exchange(channel: AbstractChannel, ex: RabbitExchange) -> AbstractExchange:
    return await channel.declare_exchange(
        ex.name, type=ex.type.value, durable=ex.durable, auto_delete=ex.auto_delete
    )


async def _queue(channel: AbstractChannel, q: RabbitQueue) -> AbstractQueue:
    return await channel.declare_queue(
        q.name, durable=q.durable, exclusive=q.exclusive, auto_delete=q.auto_delete, arguments=q.arguments
    )


async def declare_topology(link: Link, topo: Topology) -> None:
    """Declare every durable exchange and work queue, whoever starts first.

    Producers declare the queues they publish to, so a message published before its
    consumer ever ran waits in a queue instead of being dropped by the exchange.

    This goes through a channel of its own on purpose: FastStream caches a queue
    declared through the broker and then consumes it on that (default) channel,
    without the prefetch of the subscriber's own channel, and an unbounded prefetch
    lets one process take every waiting task at once.
    """
    async with link.session() as channel:
        work = await _exchange(channel, topo.work_exchange)
        await _exchange(channel, topo.live_exchange)
        dead = await _exchange(channel, topo.dead_exchange)
        control = await _exchange(channel, topo.control_exchange)
        for q in (topo.llm_queue, topo.image_queue, topo.results_queue):
            await (await _queue(channel, q)).bind(work, routing_key=q.routing())
        for q in (topo.dead_queue, topo.dead_notify_queue):
            await (await _queue(channel, q)).bind(dead, routing_key="")
        for q in topo.retry_queues:
            await _queue(channel, q)
        await (await _queue(channel, topo.sessions_queue)).bind(control, routing_key="")
        await _queue(channel, topo.sessions_env_queue)


async def delete_topology(url: str, prefix: str) -> None:
    """Delete everything `declare_topology` makes for a prefix: every queue (retry queues
    included) and every exchange. Replicas' own control and live queues go with their
    process (exclusive); what a test or a bench run leaves is gone after this."""
    topo = Topology(prefix)
    exchanges = [topo.work_exchange, topo.live_exchange, topo.dead_exchange, topo.control_exchange]
    connection = await aio_pika.connect(url)
    async with connection:
        for name in topo.all_queue_names:
            # A queue in use by an exclusive consumer refuses, and closes the channel.
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.close()
        channel = await connection.channel()
        for exchange in exchanges:
            await channel.exchange_delete(exchange.name)


async def queue_depth(link: Link, name: str) -> tuple[int, int]:
    """(messages, consumers) of a queue, by a passive declare that changes nothing."""
    async with link.session() as channel:
        queue = await channel.declare_queue(name, passive=True)
        found = queue.declaration_result
        return int(found.message_count or 0), int(found.consumer_count or 0)
