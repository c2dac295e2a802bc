"""RabbitMQ exchanges and queues, declared from this one place.

A queue declared with different arguments in two services fails with
PRECONDITION_FAILED at start, so every service builds its queue objects here.

Work queues are quorum queues (RabbitMQ >= 3.8; no 4.x feature is used): durable,
replicated where there is a cluster, and with `x-delivery-limit` so a message that
kills its consumer again and again is dead-lettered instead of looping forever.
"""

from __future__ import annotations

from dataclasses import dataclass

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

DELIVERY_LIMIT = 5

# Delays of the retry queues, seconds. A retry waits in the shortest tier that is at
# least as long as its delay, then is dead-lettered back to its work queue: no
# consumer is held while it waits, and it survives a worker or broker restart.
RETRY_TIERS: dict[str, tuple[int, ...]] = {
    "llm.tasks": (1, 5, 15, 30, 60),
    "image.tasks": (2, 5, 15, 60, 180),
}


@dataclass(frozen=True)
class Topology:
    """Names derive from a prefix so that test runs (and several installs) can share a broker."""

    prefix: str = "storybook"

    # ------------------------------------------------------------------ exchanges
    def _exchange(self, name: str, kind: ExchangeType) -> RabbitExchange:
        return RabbitExchange(f"{self.prefix}.{name}", type=kind, durable=True)

    @property
    def work_exchange(self) -> RabbitExchange:
        return self._exchange("work", ExchangeType.DIRECT)

    @property
    def dead_exchange(self) -> RabbitExchange:
        return self._exchange("dead", ExchangeType.FANOUT)

    @property
    def live_exchange(self) -> RabbitExchange:
        # Topic, routed by `story.<id>`: each gateway replica binds its own queue with
        # the stories its sockets read (gateway/messaging/live.py).
        return self._exchange("live", ExchangeType.TOPIC)

    @property
    def control_exchange(self) -> RabbitExchange:
        """Operator commands to every running worker (e.g. new jimeng session ids)."""
        return self._exchange("control", ExchangeType.FANOUT)

    # ------------------------------------------------------------------ routing keys
    llm_key = "llm.tasks"
    image_key = "image.tasks"
    results_key = "gateway.results"

    # ------------------------------------------------------------------ queues
    def _work_queue(self, key: str) -> RabbitQueue:
        return RabbitQueue(
            f"{self.prefix}.{key}",
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=key,
            arguments={
                "x-dead-letter-exchange": f"{self.prefix}.dead",
                "x-delivery-limit": DELIVERY_LIMIT,
            },
        )

    @property
    def llm_queue(self) -> RabbitQueue:
        return self._work_queue(self.llm_key)

    @property
    def image_queue(self) -> RabbitQueue:
        return self._work_queue(self.image_key)

    @property
    def results_queue(self) -> RabbitQueue:
        return self._work_queue(self.results_key)

    @property
    def dead_queue(self) -> RabbitQueue:
        """Kept for operators: every dead message with its reason, until someone looks."""
        return RabbitQueue(f"{self.prefix}.dead", durable=True)

    @property
    def dead_notify_queue(self) -> RabbitQueue:
        """A copy of every dead message, for the gateway to tell the story's reader."""
        return RabbitQueue(
            f"{self.prefix}.dead.notify",
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={"x-delivery-limit": DELIVERY_LIMIT},
        )

    @property
    def sessions_queue(self) -> RabbitQueue:
        """The latest jimeng session command, kept (max length 1) for workers that start later."""
        return self._kept_queue("jimeng-sessions")

    @property
    def sessions_env_queue(self) -> RabbitQueue:
        """Which JIMENG_SESSION_ID image workers last started with, and since when (max
        length 1): a kept command older than a change of the environment is not applied."""
        return self._kept_queue("jimeng-environment")

    def _kept_queue(self, name: str) -> RabbitQueue:
        """A control record of length one: the newest message replaces the one before."""
        return RabbitQueue(f"{self.prefix}.control.{name}", durable=True, arguments={"x-max-length": 1})

    def control_queue(self, replica: str) -> RabbitQueue:
        return RabbitQueue(f"{self.prefix}.control.{replica}", exclusive=True, auto_delete=True)

    def retry_queue(self, key: str, seconds: int) -> RabbitQueue:
        return RabbitQueue(
            f"{self.prefix}.retry.{key}.{seconds}s",
            durable=True,
            arguments={
                "x-message-ttl": seconds * 1000,
                "x-dead-letter-exchange": f"{self.prefix}.work",
                "x-dead-letter-routing-key": key,
            },
        )

    def retry_tier(self, key: str, delay: float) -> RabbitQueue:
        tiers = RETRY_TIERS[key]
        seconds = next((t for t in tiers if t >= delay), tiers[-1])
        return self.retry_queue(key, seconds)

    @property
    def retry_queues(self) -> list[RabbitQueue]:
        return [self.retry_queue(k, s) for k, tiers in RETRY_TIERS.items() for s in tiers]

    def live_queue(self, replica: str) -> RabbitQueue:
        # One per gateway process, gone with it: what a replica missed while down is
        # in the store and replayed from there, so nothing here needs to survive.
        # Bound per story while the replica has readers of it, never with `story.*`.
        return RabbitQueue(
            f"{self.prefix}.live.{replica}",
            exclusive=True,
            auto_delete=True,
            arguments={"x-max-length": 100_000, "x-message-ttl": 60_000},
        )

    @property
    def work_queue_names(self) -> list[str]:
        return [self.llm_queue.name, self.image_queue.name, self.results_queue.name]

    @property
    def all_queue_names(self) -> list[str]:
        return [
            *self.work_queue_names,
            self.dead_queue.name,
            self.dead_notify_queue.name,
            self.sessions_queue.name,
            self.sessions_env_queue.name,
            *(q.name for q in self.retry_queues),
        ]


def live_routing_key(story_id: str) -> str:
    return f"story.{story_id}"
