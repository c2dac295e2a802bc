"""The broker connection every service uses, and the declaration of the shared topology."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.rabbit import RabbitBroker
from faststream.rabbit.message import RabbitMessage
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.common.topology import Topology

log = logging.getLogger(__name__)

T = TypeVar("T")


def make_broker(url: str, **kwargs: Any) -> RabbitBroker:
    # Robust connection (aio-pika) reconnects by itself after a broker restart and
    # restores consumers; publisher confirms are on by default, so an awaited publish
    # means the broker has the message.
    return RabbitBroker(
        url,
        reconnect_interval=1.0,
        graceful_timeout=30.0,
        # Through our JSON, secret-scrubbing handler like every other line.
        logger=logging.getLogger("faststream"),
        # Per-message "received/processed" lines only at DEBUG: deltas are many.
        log_level=logging.DEBUG,
        **kwargs,
    )


async def declare_topology(broker: RabbitBroker, topo: Topology) -> None:
    """Declare every durable exchange and work queue, whoever starts first.

    Producers declare the queues they publish to, so a message published before its
    consumer ever ran waits in a queue instead of being dropped by the exchange.
    """
    work = await broker.declare_exchange(topo.work_exchange)
    await broker.declare_exchange(topo.live_exchange)
    dead = await broker.declare_exchange(topo.dead_exchange)
    for queue in (topo.llm_queue, topo.image_queue, topo.results_queue):
        declared = await broker.declare_queue(queue)
        await declared.bind(work, routing_key=queue.routing())
    dead_queue = await broker.declare_queue(topo.dead_queue)
    await dead_queue.bind(dead, routing_key="")


async def publish_work(
    broker: RabbitBroker,
    topo: Topology,
    message: BaseModel | dict[str, Any],
    *,
    routing_key: str,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish durable work and wait for the broker's confirm."""
    await broker.publish(
        message,
        exchange=topo.work_exchange,
        routing_key=routing_key,
        persist=True,
        headers=headers,
    )


class Malformed(Exception):
    """A message that can never be handled: it goes to the dead-letter queue."""


async def settle(msg: RabbitMessage, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` for one delivery and settle it the way our guarantees need.

    Done: ack. Malformed: reject without requeue, so the broker dead-letters it with
    the reason. Anything else (store down, broker hiccup): requeue, and the quorum
    queue's delivery limit bounds how often that can happen.
    """
    try:
        await work()
    except Malformed as exc:
        log.error("dead-lettering a malformed message: %s", exc)
        await msg.reject(requeue=False)
    except Exception:
        log.exception("handling failed; the message is requeued")
        await msg.nack(requeue=True)
    else:
        await msg.ack()


def parse(adapter: TypeAdapter[T], body: bytes) -> T:
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise Malformed(f"{exc.error_count()} problem(s): {exc.errors()[0]['msg']}") from None
