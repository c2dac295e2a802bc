"""One consumer shape for every work queue: the handler works, this module settles.

A handler does its work and, when that fails, raises what should happen next:

- `Retry(reason, code=..., after=N, counted=...)`: park the message in a TTL retry
  queue (topology.py), which dead-letters it back to its work queue after N seconds,
  so no consumer waits. A counted retry spends one of the queue's attempts; past the
  last one the message is given up. `counted=False` is a planned wait (a rate limit
  waited out, a picture waiting for its character sheet) that is bounded otherwise.
- `GiveUp(reason, code=..., keep=...)`: the reader is told once (the queue's
  `report` hook builds the failure, published to `gateway.results`), and with `keep`
  the message is kept in the dead-letter queue with its reason, for operators. Such
  a dead letter says it was reported, so the gateway does not report it again.
- `Malformed`: the message can never be handled; dead-lettered with the reason.
- anything else (the store or the broker away): requeued as it is, no attempt spent:
  a broker failure is never counted as an upstream failure. The quorum queue's
  delivery limit bounds how often a message can kill its consumer; what the broker
  then dead-letters carries no "reported" mark, and the gateway fails its page.

Every message is acknowledged only after what it led to (result, retry, dead letter)
is confirmed by the broker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.common.bus import publish_work
from services.common.logs import bind_headers
from services.common.metrics import DEAD_LETTERED, RETRIES
from services.common.topology import Topology

log = logging.getLogger(__name__)

T = TypeVar("T")

# Header of a dead letter whose reader was told by the worker that gave it up.
REPORTED = "x-reported"


class Retry(Exception):
    """Try the message again later; `after` None: the queue's backoff for this attempt."""

    def __init__(
        self,
        reason: str,
        *,
        code: str,
        after: float | None = None,
        counted: bool = True,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason, self.code, self.after, self.counted = reason, code, after, counted
        self.headers = dict(headers or {})


class GiveUp(Exception):
    """Stop trying: the reader is told; with `keep`, operators find it in `storybook.dead`."""

    def __init__(self, reason: str, *, code: str, keep: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.code, self.keep = reason, code, keep


class Malformed(Exception):
    """A message that can never be handled: it goes to the dead-letter queue."""


def parse(adapter: TypeAdapter[T], body: bytes) -> T:
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise Malformed(f"{exc.error_count()} problem(s): {exc.errors()[0]['msg']}") from None


def backoff(retries: int, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter, so a fleet does not retry in lockstep."""
    return float(min(cap, base * 2**retries) * random.uniform(0.8, 1.2))


class Delivery:
    """One received message: its headers (bound to the log context) and its attempt."""

    def __init__(self, msg: RabbitMessage, *, max_attempts: int = 1) -> None:
        self.msg = msg
        self.headers: dict[str, Any] = dict(msg.headers or {})
        bind_headers(self.headers)
        # Counted retries before this delivery: x-retries travels with the parked message.
        self.retries = int(self.headers.get("x-retries", 0) or 0)
        self.max_attempts = max_attempts
        # Redelivered: a consumer died holding it (or the broker restarted).
        self.redelivered = bool(getattr(msg.raw_message, "redelivered", False))

    @property
    def attempt(self) -> int:
        return self.retries + 1

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


Handler = Callable[[T, Delivery], Awaitable[None]]
# What the reader is told when a message is given up (None: nothing to tell).
Report = Callable[[T, GiveUp], Awaitable[BaseModel | None]]


@dataclass(frozen=True)
class Retries:
    """Counted attempts before a retry becomes a give-up, and the backoff between them."""

    attempts: int = 1
    base: float = 2.0
    cap: float = 60.0


@dataclass(frozen=True, kw_only=True)
class QueuePolicy(Generic[T]):
    """How one queue's messages are received, retried and given up."""

    queue: RabbitQueue
    exchange: RabbitExchange
    parse: Callable[[bytes], T]
    prefetch: int
    retries: Retries = Retries()
    report: Report[T] | None = None

    @property
    def key(self) -> str:
        return self.queue.routing() or self.queue.name


class Settler(Generic[T]):
    """Runs a handler for one message and settles it as the module docstring says."""

    def __init__(
        self, broker: RabbitBroker, topo: Topology, policy: QueuePolicy[T], handle: Handler[T]
    ) -> None:
        self.broker, self.topo, self.policy, self.handle = broker, topo, policy, handle

    async def __call__(self, msg: RabbitMessage) -> None:
        delivery = Delivery(msg, max_attempts=self.policy.retries.attempts)
        try:
            task = self.policy.parse(msg.body)
            try:
                await self.handle(task, delivery)
            except Retry as retry:
                if retry.counted and delivery.last_attempt:
                    reason = f"{retry.code}: {retry.reason} ({delivery.attempt} attempts)"
                    await self._give_up(msg, task, GiveUp(reason, code=retry.code, keep=True))
                else:
                    await self._park(msg, delivery, retry)
            except GiveUp as given_up:
                await self._give_up(msg, task, given_up)
        except Malformed as exc:
            log.error("dead-lettering a malformed message: %s", exc)
            try:
                await self._dead_letter(msg, f"malformed: {exc}", code="malformed", reported=False)
            except Exception:
                log.warning("the malformed message could not be dead-lettered; it is requeued")
                await msg.nack(requeue=True)
                return
        except Exception:
            log.exception("handling failed; the message is requeued, no attempt spent")
            await msg.nack(requeue=True)
            return
        await msg.ack()

    async def _park(self, msg: RabbitMessage, delivery: Delivery, retry: Retry) -> None:
        policy = self.policy
        delay = retry.after
        if delay is None:
            delay = backoff(delivery.retries, base=policy.retries.base, cap=policy.retries.cap)
        log.warning("%s (%s); trying again in %.1fs", retry.reason, retry.code, delay)
        RETRIES.labels(policy.key, retry.code).inc()
        queue = self.topo.retry_tier(policy.key, delay)
        await self.broker.publish(
            msg.body,
            queue=queue.name,
            persist=True,
            content_type="application/json",
            expiration=max(0.1, delay),
            headers={
                **delivery.headers,
                **retry.headers,
                "x-retries": delivery.retries + (1 if retry.counted else 0),
            },
        )

    async def _give_up(self, msg: RabbitMessage, task: T, given_up: GiveUp) -> None:
        log.error("given up: %s", given_up.reason, extra={"code": given_up.code})
        report = await self.policy.report(task, given_up) if self.policy.report else None
        if report is not None:
            story_id = str(getattr(report, "story_id", ""))
            headers = {"story_id": story_id}
            await publish_work(
                self.broker, self.topo, report, routing_key=self.topo.results_key, headers=headers
            )
        if given_up.keep:
            await self._dead_letter(msg, given_up.reason, code=given_up.code, reported=report is not None)

    async def _dead_letter(self, msg: RabbitMessage, reason: str, *, code: str, reported: bool) -> None:
        """Keep the message, with why it died, where operators see it."""
        DEAD_LETTERED.labels(self.policy.key, code).inc()
        await self.broker.publish(
            msg.body,
            exchange=self.topo.dead_exchange,
            persist=True,
            content_type="application/json",
            headers={
                **dict(msg.headers or {}),
                "x-reason": reason[:500],
                "x-error-code": code,
                "x-source": self.policy.key,
                **({REPORTED: "1"} if reported else {}),
            },
        )


def consume(
    broker: RabbitBroker,
    topo: Topology,
    queue: RabbitQueue,
    handle: Handler[T],
    *,
    parse: Callable[[bytes], T],
    prefetch: int,
    exchange: RabbitExchange | None = None,
    retries: Retries = Retries(),
    report: Report[T] | None = None,
) -> Settler[T]:
    """Subscribe `handle` to a queue (bound to the work exchange unless told otherwise);
    settling is manual, and done by the Settler."""
    policy = QueuePolicy(
        queue=queue,
        exchange=exchange or topo.work_exchange,
        parse=parse,
        prefetch=prefetch,
        retries=retries,
        report=report,
    )
    settler = Settler(broker, topo, policy, handle)

    async def on_message(msg: RabbitMessage) -> None:
        await settler(msg)

    broker.subscriber(
        queue, policy.exchange, channel=Channel(prefetch_count=prefetch), ack_policy=AckPolicy.MANUAL
    )(on_message)
    return settler


def parser(adapter: TypeAdapter[T]) -> Callable[[bytes], T]:
    """A body parser that raises Malformed for what the adapter refuses."""
    return lambda body: parse(adapter, body)
