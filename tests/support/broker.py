"""Clean-up of what a test run declared on the shared broker."""

from __future__ import annotations

import aio_pika

from services.common.topology import Topology


async def delete_topology(url: str, prefix: str) -> None:
    topo = Topology(prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in [*topo.work_queue_names, topo.dead_queue.name]:
            await channel.queue_delete(name)
        for ex in (topo.work_exchange, topo.live_exchange, topo.dead_exchange):
            await channel.exchange_delete(ex.name)


async def queue_depth(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
