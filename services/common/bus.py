"""The broker connection every service uses, and the declaration of the shared topology."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from aio_pika import IncomingMessage
from faststream.prometheus import PrometheusMiddleware
from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.prometheus.provider import RabbitMetricsSettingsProvider
from faststream.rabbit.response import RabbitPublishCommand
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.common.logs import bind_headers, context_headers
from services.common.metrics import DEAD_LETTERED, LIVE_DROPPED, REGISTRY, RETRIES
from services.common.topology import Topology, live_routing_key

log = logging.getLogger(__name__)

T = TypeVar("T")


class _MetricNames(RabbitMetricsSettingsProvider):
    """FastStream names a consumed message's destination by its routing key, and live
    frames are routed by story: one set of series per story, never dropped. Name them
    all `<live exchange>.story.*`, so /metrics stays the same size however many stories."""

    def get_consume_attrs_from_message(self, msg: Any) -> Any:
        attrs = super().get_consume_attrs_from_message(msg)
        exchange, _, key = attrs["destination_name"].partition(".live.story.")
        if key:
            attrs["destination_name"] = f"{exchange}.live.story.*"
        return attrs


class _Metrics(PrometheusMiddleware[IncomingMessage, RabbitPublishCommand]):
    def __init__(self, *, app_name: str) -> None:
        super().__init__(
            settings_provider_factory=lambda _: _MetricNames(),
            registry=REGISTRY,
            app_name=app_name,
            metrics_prefix="storybook",
        )


def make_broker(url: str, *, service: str = "", **kwargs: Any) -> RabbitBroker:
    # Robust connection (aio-pika) reconnects by itself after a broker restart and
    # restores consumers; publisher confirms are on by default, so an awaited publish
    # means the broker has the message.
    middlewares = []
    if service:
        middlewares.append(_Metrics(app_name=service))
    return RabbitBroker(
        url,
        middlewares=middlewares,
        reconnect_interval=1.0,
        graceful_timeout=30.0,
        # Through our JSON, secret-scrubbing handler like every other line.
        logger=logging.getLogger("faststream"),
        # Per-message "received/processed" lines only at DEBUG: deltas are many.
        log_level=logging.DEBUG,
        **kwargs,
    )


def broker_connected(broker: RabbitBroker) -> bool:
    """Now, without waiting (a request must get its 503 at once while the broker is away)."""
    connection = broker._connection
    return connection is not None and connection.connected.is_set() and not connection.is_closed


async def declare_topology(broker: RabbitBroker, topo: Topology) -> None:
    """Declare every durable exchange and work queue, whoever starts first.

    Producers declare the queues they publish to, so a message published before its
    consumer ever ran waits in a queue instead of being dropped by the exchange.

    This goes through a channel of its own on purpose: FastStream caches a queue
    declared through the broker and then consumes it on that (default) channel,
    without the prefetch of the subscriber's own channel, and an unbounded prefetch
    lets one process take every waiting task at once.
    """
    connection = broker._connection
    assert connection is not None, "connect the broker first"
    channel = await connection.channel()
    try:

        async def exchange(ex: RabbitExchange) -> aio_pika.abc.AbstractExchange:
            return await channel.declare_exchange(
                ex.name, type=ex.type.value, durable=ex.durable, auto_delete=ex.auto_delete
            )

        async def queue(q: RabbitQueue) -> aio_pika.abc.AbstractQueue:
            return await channel.declare_queue(
                q.name,
                durable=q.durable,
                exclusive=q.exclusive,
                auto_delete=q.auto_delete,
                arguments=q.arguments,
            )

        work = await exchange(topo.work_exchange)
        await exchange(topo.live_exchange)
        dead = await exchange(topo.dead_exchange)
        control = await exchange(topo.control_exchange)
        for q in (topo.llm_queue, topo.image_queue, topo.results_queue):
            await (await queue(q)).bind(work, routing_key=q.routing())
        for q in (topo.dead_queue, topo.dead_notify_queue):
            await (await queue(q)).bind(dead, routing_key="")
        for q in topo.retry_queues:
            await queue(q)
        await (await queue(topo.sessions_queue)).bind(control, routing_key="")
        await queue(topo.sessions_env_queue)
    finally:
        await channel.close()


async def publish_work(
    broker: RabbitBroker,
    topo: Topology,
    message: BaseModel | dict[str, Any],
    *,
    routing_key: str,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish durable work and wait for the broker's confirm.

    The story_id / request_id of the current log context travel along in headers.
    """
    await broker.publish(
        message,
        exchange=topo.work_exchange,
        routing_key=routing_key,
        persist=True,
        headers={**context_headers(), **(headers or {})},
    )


class LivePublisher:
    """Live frames (text deltas, stored events, hints) on a channel without publisher confirms.

    They are a courtesy, not a record: a frame lost while the broker is away is mended
    from the store (readers fill gaps by seq, replicas resync after a reconnect). Waiting
    for a confirm per frame would put a broker round trip between two words of a page.
    One channel keeps the frames of a process in order. Failures are logged, never raised.
    """

    def __init__(self, broker: RabbitBroker, topo: Topology) -> None:
        self.broker, self.topo = broker, topo
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._opening = asyncio.Lock()

    async def _ready(self) -> aio_pika.abc.AbstractExchange:
        """The live exchange on this process's channel, opened on first use and only then:
        the channel is robust, so aio-pika reopens it (and redeclares the exchange) after a
        reconnect; a frame published while it is away fails and is counted."""
        if self._exchange is None:
            async with self._opening:
                if self._exchange is None:
                    connection = self.broker._connection
                    assert connection is not None, "connect the broker first"
                    channel = await connection.channel(publisher_confirms=False)
                    ex = self.topo.live_exchange
                    self._exchange = await channel.declare_exchange(
                        ex.name, type=ex.type.value, durable=ex.durable
                    )
        return self._exchange

    async def publish(self, message: BaseModel) -> None:
        story_id = str(getattr(message, "story_id", ""))
        try:
            exchange = await self._ready()
            await exchange.publish(
                aio_pika.Message(
                    message.model_dump_json().encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                ),
                routing_key=live_routing_key(story_id),
                mandatory=False,
            )
        except Exception as exc:
            LIVE_DROPPED.inc()
            log.warning("live frame not sent (%s)", type(exc).__name__, extra={"story_id": story_id})


class Malformed(Exception):
    """A message that can never be handled: it goes to the dead-letter queue."""


class Delivery:
    """One received work message and the ways our guarantees allow to settle it."""

    def __init__(self, broker: RabbitBroker, topo: Topology, msg: RabbitMessage, *, key: str) -> None:
        self.broker, self.topo, self.msg, self.key = broker, topo, msg, key
        self.headers: dict[str, Any] = dict(msg.headers or {})
        bind_headers(self.headers)
        self.retries = int(self.headers.get("x-retries", 0) or 0)
        # Redelivered: a consumer died holding it (or the broker restarted).
        self.redelivered = bool(getattr(msg.raw_message, "redelivered", False))

    async def retry_later(
        self, delay: float, *, code: str, counted: bool = True, headers: dict[str, Any] | None = None
    ) -> None:
        """Park the message in a retry queue; it comes back to its work queue after `delay`.

        `counted`: the wait spends one of the task's attempts (False for a planned wait).
        """
        RETRIES.labels(self.key, code).inc()
        queue = self.topo.retry_tier(self.key, delay)
        await self.broker.publish(
            self.msg.body,
            queue=queue.name,
            persist=True,
            content_type="application/json",
            expiration=max(0.1, delay),
            headers={**self.headers, **(headers or {}), "x-retries": self.retries + (1 if counted else 0)},
        )

    async def dead_letter(self, reason: str, *, code: str = "dead") -> None:
        """Keep the message, with why it died, where operators (and the gateway) see it."""
        DEAD_LETTERED.labels(self.key, code).inc()
        await self.broker.publish(
            self.msg.body,
            exchange=self.topo.dead_exchange,
            persist=True,
            content_type="application/json",
            headers={
                **self.headers,
                "x-reason": reason[:500],
                "x-error-code": code,
                "x-source": self.key,
            },
        )


async def settle(delivery: Delivery, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` for one delivery and settle it.

    Done (including a retry parked or a dead letter written by `work`): ack.
    Malformed: dead-letter it with the reason, then ack. Anything else (store down,
    broker hiccup): requeue; the quorum queue's delivery limit bounds how often a
    message can kill its consumer before the broker dead-letters it.
    """
    msg = delivery.msg
    try:
        await work()
    except Malformed as exc:
        log.error("dead-lettering a malformed message: %s", exc)
        try:
            await delivery.dead_letter(f"malformed: {exc}", code="malformed")
        except Exception:
            await msg.nack(requeue=True)
            return
        await msg.ack()
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


def backoff(retries: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter, so a fleet does not retry in lockstep."""
    return float(min(cap, base * 2**retries) * random.uniform(0.8, 1.2))
