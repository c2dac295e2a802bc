"""The consumer's retry and give-up decisions, in-process with FastStream's test broker.

A handler raises; these tests read what reached the retry queues, `gateway.results`
and the dead-letter exchange, and how the message was settled. The same decisions on
the real broker are proven by tests/chaos and tests/e2e.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue, TestRabbitBroker
from faststream.rabbit.message import RabbitMessage as Message

from services.common import contracts as c
from services.common.bus import BrokerUnavailable
from services.common.consumer import REPORTED, Delivery, GiveUp, Retries, Retry, consume, parser
from services.common.errors import reader_error
from services.common.topology import RETRY_TIERS, Topology
from services.gateway.messaging.consumers import failure_of

TASK = c.PageTask(
    story_id="s1",
    page=2,
    brief=c.StoryBrief(premise="小兔子去月亮", age=5, language="zh", style="水彩", total_pages=4),
    outline=c.Outline(
        title="月亮", characters=[c.Character(name="兔兔", look="a white rabbit")], style="水彩"
    ),
)


@dataclass
class Seen:
    """What left the consumer, and how it settled the message."""

    parked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    calls: int = 0


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    record = Seen()

    # The test broker's messages settle nowhere: record what the consumer of the work
    # queue asks for (the recording subscribers below settle their own).
    def mine(msg: Message) -> bool:
        return bool(msg.raw_message.routing_key == Topology.llm_key)

    async def ack(self: Message, multiple: bool = False) -> None:
        if mine(self):
            record.settled.append("ack")

    async def nack(self: Message, multiple: bool = False, requeue: bool = True) -> None:
        if mine(self):
            record.settled.append("requeue" if requeue else "drop")

    monkeypatch.setattr(Message, "ack", ack)
    monkeypatch.setattr(Message, "nack", nack)
    return record


Behaviour = Callable[[c.PageTask, Delivery], Any]


@pytest.fixture
async def run(seen: Seen) -> AsyncIterator[Callable[..., Any]]:
    """Deliver one task (with headers) to a handler that behaves as asked."""
    topo = Topology("tconsumer")
    broker = RabbitBroker()
    behaviour: dict[str, Behaviour] = {}

    async def handle(task: c.PageTask, delivery: Delivery) -> None:
        seen.calls += 1
        behaviour["now"](task, delivery)

    async def report(task: c.PageTask, given_up: GiveUp) -> c.PageFailed:
        return c.PageFailed(story_id=task.story_id, page=task.page, error=reader_error(given_up.code))

    llm_task = parser(c.llm_task_adapter)
    consume(
        broker, topo, topo.llm_queue, handle, parse=llm_task, prefetch=1, retries=Retries(3), report=report
    )  # type: ignore[arg-type]

    def parked_in(name: str) -> Callable[[RabbitMessage], Any]:
        async def parked(msg: RabbitMessage) -> None:
            seen.parked.append((name, dict(msg.headers)))

        return parked

    for seconds in RETRY_TIERS[topo.llm_key]:
        name = topo.retry_queue(topo.llm_key, seconds).name
        broker.subscriber(RabbitQueue(name))(parked_in(name))

    @broker.subscriber(topo.results_queue, topo.work_exchange)
    async def results(msg: RabbitMessage) -> None:
        seen.results.append(json.loads(msg.body))

    @broker.subscriber(topo.dead_queue, topo.dead_exchange)
    async def dead(msg: RabbitMessage) -> None:
        seen.dead.append(dict(msg.headers))

    async with TestRabbitBroker(broker) as test:

        async def deliver(act: Behaviour, body: bytes | None = None, **headers: Any) -> None:
            behaviour["now"] = act
            message = TASK.model_dump_json().encode() if body is None else body
            await test.publish(
                message, exchange=topo.work_exchange, routing_key=topo.llm_key, headers=headers
            )

        yield deliver


def raises(exc: Exception) -> Behaviour:
    def act(task: c.PageTask, delivery: Delivery) -> None:
        raise exc

    return act


async def test_a_counted_retry_is_parked_and_spends_an_attempt(run: Any, seen: Seen) -> None:
    await run(raises(Retry("busy", code="llm_unavailable", after=4)), **{"x-retries": 1})
    [(queue, headers)] = seen.parked
    assert queue == "tconsumer.retry.llm.tasks.5s", "the shortest tier at least as long as the wait"
    assert headers["x-retries"] == 2
    assert seen.settled == ["ack"] and not seen.results and not seen.dead


async def test_the_last_counted_retry_gives_up_reported_once_and_kept(run: Any, seen: Seen) -> None:
    await run(raises(Retry("still busy", code="llm_unavailable")), **{"x-retries": 2})
    assert not seen.parked
    [failed] = seen.results
    assert (failed["kind"], failed["page"], failed["error"]["code"]) == ("page.failed", 2, "llm_unavailable")
    [dead] = seen.dead
    assert dead["x-error-code"] == "llm_unavailable" and "3 attempts" in dead["x-reason"]
    assert dead[REPORTED] == "1", "the gateway must not report it a second time"
    assert seen.settled == ["ack"]


async def test_a_planned_wait_spends_no_attempt_even_on_the_last_one(run: Any, seen: Seen) -> None:
    wait = Retry("rate limited", code="llm_rate_limited", after=12, counted=False, headers={"x-waits": 3})
    await run(raises(wait), **{"x-retries": 2})
    [(queue, headers)] = seen.parked
    assert queue.endswith(".15s") and headers["x-retries"] == 2 and headers["x-waits"] == 3
    assert not seen.results and not seen.dead


async def test_a_permanent_failure_is_reported_once_and_not_kept(run: Any, seen: Seen) -> None:
    await run(raises(GiveUp("llm_auth: key refused", code="llm_auth")))
    assert [r["error"]["code"] for r in seen.results] == ["llm_auth"]
    assert not seen.dead and not seen.parked and seen.settled == ["ack"]


async def test_a_broker_failure_requeues_without_spending_an_attempt(run: Any, seen: Seen) -> None:
    await run(raises(BrokerUnavailable("the broker did not confirm the message")), **{"x-retries": 2})
    assert seen.settled == ["requeue"]
    assert not seen.parked and not seen.results and not seen.dead, "not counted, not reported"


async def test_a_malformed_message_is_dead_lettered_without_calling_the_handler(run: Any, seen: Seen) -> None:
    await run(raises(AssertionError("never called")), body=b'{"kind": "page"}')
    assert seen.calls == 0
    [dead] = seen.dead
    assert dead["x-error-code"] == "malformed" and REPORTED not in dead
    assert seen.settled == ["ack"] and not seen.results


async def test_the_gateway_reports_only_what_no_worker_reported(run: Any, seen: Seen) -> None:
    topo = Topology("tconsumer")
    await run(raises(Retry("still busy", code="llm_unavailable")), **{"x-retries": 2})
    [dead] = seen.dead
    body = TASK.model_dump_json().encode()
    assert failure_of(body, dead, topo) is None, "reported by the worker already"
    # A task the broker dead-lettered itself (it killed its consumer at every delivery).
    by_broker = failure_of(body, {"x-death": [{"reason": "delivery_limit"}]}, topo)
    assert isinstance(by_broker, c.PageFailed) and by_broker.error.code == "llm_failed"
