"""An upstream budget shared through Redis holds across processes, and survives a
holder that dies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.common.budget import Budget, SharedBudget, make_budget
from tests.support.infra import unique


@pytest.fixture
async def client(redis: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis)
    yield client
    await client.aclose()


def two_processes(
    client: Redis, *, concurrency: int, per_minute: int = 0, lease: float = 30.0
) -> list[Budget]:
    """Two budgets naming one account, as two worker processes hold them."""
    key = unique("tbudget-")
    return [
        SharedBudget(
            client, key=key, name="test", concurrency=concurrency, per_minute=per_minute, lease=lease
        )
        for _ in range(2)
    ]


async def test_never_more_in_flight_than_the_budget_across_processes(client: Redis) -> None:
    budgets = two_processes(client, concurrency=3)
    now = peak = 0

    async def call(budget: Budget) -> None:
        nonlocal now, peak
        async with budget.slot():
            now += 1
            peak = max(peak, now)
            await asyncio.sleep(0.03)
            now -= 1

    await asyncio.gather(*(call(budgets[n % 2]) for n in range(24)))
    assert peak == 3


async def test_a_slot_held_by_a_killed_worker_comes_back_when_its_lease_ends(client: Redis) -> None:
    dead, alive = two_processes(client, concurrency=1, lease=0.5)
    assert isinstance(dead, SharedBudget)
    await dead._acquire("killed-mid-call")  # taken, then never renewed nor given back
    started = time.monotonic()
    async with alive.slot():
        waited = time.monotonic() - started
    assert 0.3 < waited < 2.0


async def test_a_long_call_keeps_its_slot_by_renewing_it(client: Redis) -> None:
    first, second = two_processes(client, concurrency=1, lease=0.3)
    order: list[str] = []

    async def long_call() -> None:
        async with first.slot():
            order.append("long starts")
            await asyncio.sleep(1.0)  # three leases long
            order.append("long ends")

    async def next_call() -> None:
        await asyncio.sleep(0.1)
        async with second.slot():
            order.append("next starts")

    await asyncio.gather(long_call(), next_call())
    assert order == ["long starts", "long ends", "next starts"]


async def test_calls_per_minute_are_counted_across_processes(client: Redis) -> None:
    budgets = two_processes(client, concurrency=10, per_minute=3)
    started = 0

    async def call(budget: Budget) -> None:
        nonlocal started
        async with budget.slot():
            started += 1

    calls = [asyncio.create_task(call(budgets[n % 2])) for n in range(5)]
    await asyncio.sleep(0.5)
    assert started == 3  # the other two wait for the minute to move on
    for task in calls:
        task.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


async def test_without_redis_answering_the_budget_is_kept_per_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    budget = make_budget(gone, prefix="t", name="moonshot", account="k", concurrency=1)
    with caplog.at_level(logging.ERROR):
        async with budget.slot():
            pass
    assert "Redis does not answer" in caplog.text
    await gone.aclose()
