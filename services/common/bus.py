"""FastStream's broker as every service makes it, durable work out, live frames out."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika
import aiormq
from aio_pika import IncomingMessage
from faststream.prometheus import PrometheusMiddleware
from faststream.rabbit import RabbitBroker
from faststream.rabbit.prometheus.provider import RabbitMetricsSettingsProvider
from faststream.rabbit.response import RabbitPublishCommand
from pydantic import BaseModel

from services.common.amqp import Link
from services.common.logs import context_headers
from services.common.metrics import LIVE_DROPPED, REGISTRY
from services.common.topology import Topology, live_routing_key

log = logging.getLogger(__name__)


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


async def publish_work(
    broker: RabbitBroker,
    topo: Topology,
    message: BaseModel | dict[str, Any],
    *,
    routing_key: str,
    headers: dict[str, Any] | None = None,
    patient: bool = False,
) -> None:
    """Publish durable work and wait for the broker's confirm, or raise BrokerUnavailable.

    The story_id / request_id of the current log context travel along in headers.
    `patient`: try again for a while first (the robust connection comes back within
    seconds after a broker restart): a worker's result holds an upstream answer that
    trying the task again would pay for a second time.
    """
    headers = {**context_headers(), **(headers or {})}
    waits = iter(PATIENCE if patient else ())
    while True:
        try:
            await broker.publish(
                message, exchange=topo.work_exchange, routing_key=routing_key, persist=True, headers=headers
            )
            return
        except Exception as exc:
            # The message is built: whatever fails now is the broker's, never the upstream's.
            wait = next(waits, None)
            if wait is None:
                why = f"the broker did not confirm the message ({type(exc).__name__})"
                raise BrokerUnavailable(why) from exc
            log.warning("the broker did not confirm a message (%s); trying again", type(exc).__name__)
            await asyncio.sleep(wait)


class BrokerUnavailable(Exception):
    """The broker did not take a message: the task is requeued, and no attempt is spent."""


# Seconds between the tries of a patient publish: about 15 s in all.
PATIENCE = (0.5, 1.0, 2.0, 4.0, 8.0)


class LivePublisher:
    """Live frames (text deltas, stored events, hints) on a channel without publisher confirms.

    They are a courtesy, not a record: a frame lost while the broker is away is mended
    from the store (readers fill gaps by seq, replicas resync after a reconnect). Waiting
    for a confirm per frame would put a broker round trip between two words of a page.
    One channel keeps the frames of a process in order. Failures are logged, never raised.

    A frame is handed to the connection's writer and not waited for: aio-pika's publish
    holds the channel's lock until its frame has been written out, so every stream of a
    worker queued behind one lock, a loop turn each, and under load a delta waited
    hundreds of ms for the deltas of other pages. The writer keeps the frames in order.
    """

    def __init__(self, link: Link, topo: Topology) -> None:
        self.link, self.topo = link, topo
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._opening = asyncio.Lock()

    async def _ready(self) -> aio_pika.abc.AbstractChannel:
        """This process's channel with the live exchange declared, opened on first use and
        only then: the channel is robust, so aio-pika reopens it (and redeclares the
        exchange) after a reconnect; a frame published while it is away fails and is counted."""
        if self._channel is None:
            async with self._opening:
                if self._channel is None:
                    channel = await self.link.channel(confirms=False)
                    ex = self.topo.live_exchange
                    await channel.declare_exchange(ex.name, type=ex.type.value, durable=ex.durable)
                    self._channel = channel
        return self._channel

    async def publish(self, message: BaseModel) -> None:
        story_id = str(getattr(message, "story_id", ""))
        try:
            channel = await (await self._ready()).get_underlay_channel()
            assert isinstance(channel, aiormq.Channel)  # its publish can skip the wait
            await channel.basic_publish(
                message.model_dump_json().encode(),
                exchange=self.topo.live_exchange.name,
                routing_key=live_routing_key(story_id),
                # JSON, not persisted: a live frame lives in memory only.
                properties=aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=1),
                mandatory=False,
                wait=False,
            )
        except Exception as exc:
            LIVE_DROPPED.inc()
            log.warning("live frame not sent (%s)", type(exc).__name__, extra={"story_id": story_id})
