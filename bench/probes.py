"""Two probes that tell a slow service from a slow broker while a run goes.

- Event-loop lag: every service answers GET /healthz from its own event loop (the
  gateway on its port, the workers on their ops port), so the time one takes to
  answer is how long anything on that loop waits for its turn.
- Broker confirms: a persistent publish to a quorum queue of the run's own and a
  transient one to a classic queue, each awaited until the broker confirms it: what
  any service's publish waits for, with no service in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx

from bench.stats import summary

EVERY = 0.2  # seconds between probes


@dataclass
class Probes:
    health_urls: dict[str, str]
    rabbitmq_url: str
    prefix: str
    lag: dict[str, list[float]] = field(default_factory=dict)
    confirms: dict[str, list[float]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def queues(self) -> dict[str, dict[str, Any]]:
        """Probe queue name -> (durable, arguments)."""
        return {
            f"{self.prefix}.probe.quorum": {"durable": True, "arguments": {"x-queue-type": "quorum"}},
            f"{self.prefix}.probe.classic": {"durable": False, "arguments": {}},
        }

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._health()),
            asyncio.create_task(self._broker()),
        ]

    async def _health(self) -> None:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            while True:
                for name, url in self.health_urls.items():
                    started = time.monotonic()
                    try:
                        await http.get(f"{url}/healthz")
                    except (httpx.ConnectError, httpx.ConnectTimeout):
                        continue  # nothing listening: a dead process, not a slow loop
                    except httpx.HTTPError:
                        # A loop stalled for seconds wakes to uvicorn's keep-alive timer and
                        # drops the waiting request: that wait is the lag, so it counts too.
                        pass
                    self.lag.setdefault(name, []).append(time.monotonic() - started)
                await asyncio.sleep(EVERY)

    async def _broker(self) -> None:
        connection = await aio_pika.connect(self.rabbitmq_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            queues = [await channel.declare_queue(name, **spec) for name, spec in self.queues.items()]
            while True:
                for queue, persistent in zip(queues, (True, False), strict=True):
                    mode = (
                        aio_pika.DeliveryMode.PERSISTENT
                        if persistent
                        else aio_pika.DeliveryMode.NOT_PERSISTENT
                    )
                    started = time.monotonic()
                    await channel.default_exchange.publish(
                        aio_pika.Message(b"probe", delivery_mode=mode), routing_key=queue.name
                    )
                    self.confirms.setdefault(queue.name.rsplit(".", 1)[1], []).append(
                        time.monotonic() - started
                    )
                    await queue.purge()
                await asyncio.sleep(EVERY)

    async def stop(self) -> dict[str, Any]:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._delete()
        return {
            "loop_lag_ms": {name: summary(v, 1000) for name, v in self.lag.items()},
            "broker_confirm_ms": {name: summary(v, 1000) for name, v in self.confirms.items()},
        }

    async def _delete(self) -> None:
        with contextlib.suppress(Exception):
            connection = await aio_pika.connect(self.rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                for name in self.queues:
                    await channel.queue_delete(name)
