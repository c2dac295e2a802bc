"""Clean-up of what a test run declared on the shared broker."""

from __future__ import annotations

import aio_pika

# One clean-up for tests and the bench: everything declare_topology makes.
from services.common.amqp import delete_topology

__all__ = ["delete_topology", "queue_depth"]


async def queue_depth(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
