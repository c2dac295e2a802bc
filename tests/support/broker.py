"""Clean-up of what a test run declared on the shared broker."""

from __future__ import annotations

import aio_pika

# One clean-up for tests and the bench: everything declare_topology makes.
from services.common.amqp import delete_topology

__all__ = ["delete_topology", "queue_counts", "queue_depth"]


async def queue_counts(url: str, name: str) -> tuple[int, int]:
    """(messages, consumers) of a queue, by a passive declare."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        found = (await channel.declare_queue(name, passive=True)).declaration_result
        return int(found.message_count or 0), int(found.consumer_count or 0)


async def queue_depth(url: str, name: str) -> int:
    return (await queue_counts(url, name))[0]
