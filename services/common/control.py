"""Operator commands over RabbitMQ: new jimeng session ids reach every image worker.

The command goes to the control exchange (fan-out): each running image worker has
its own queue there and applies it within moments; a copy stays in a queue of
length one, so a worker started later (or restarted) reads the latest command
before it takes any work.
"""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from services.common.bus import declare_topology
from services.common.contracts import JimengSessions
from services.common.topology import Topology


async def send_sessions(broker: RabbitBroker, topo: Topology, command: JimengSessions) -> None:
    await declare_topology(broker, topo)
    await broker.publish(
        command, exchange=topo.control_exchange, persist=True, content_type="application/json"
    )


async def latest_sessions(broker: RabbitBroker, topo: Topology) -> JimengSessions | None:
    """The last command sent, left in place for the next reader."""
    channel = await broker._connection.channel()  # type: ignore[union-attr]
    try:
        queue = await channel.declare_queue(topo.sessions_queue.name, passive=True)
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            return None
        await message.reject(requeue=True)
        return JimengSessions.model_validate_json(message.body)
    finally:
        await channel.close()
