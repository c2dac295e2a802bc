"""Results waiting together share a batch, in delivery order; a failure settles only its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.gateway.messaging.batch import Batcher


class Recorder:
    def __init__(self, *, refuse: set[int] | None = None, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.refuse, self.fail = refuse or set(), fail

    async def __call__(self, items: Sequence[int]) -> list[BaseException | None]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # a commit: what arrives meanwhile waits for the next batch
        if self.fail:
            raise ConnectionError("the store went away")
        return [ValueError(i) if i in self.refuse else None for i in items]


async def test_what_arrives_together_shares_a_batch_in_order() -> None:
    apply = Recorder()
    batches = Batcher(apply, most=4)
    first = asyncio.create_task(batches.submit(0))
    await asyncio.sleep(0.001)  # the first batch is being applied
    rest = [asyncio.create_task(batches.submit(i)) for i in range(1, 7)]
    await asyncio.gather(first, *rest)
    assert apply.batches == [[0], [1, 2, 3, 4], [5, 6]]


async def test_each_waiting_handler_gets_its_own_outcome() -> None:
    batches = Batcher(Recorder(refuse={2}), most=8)
    outcomes = await asyncio.gather(*(batches.submit(i) for i in range(4)), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["NoneType", "NoneType", "ValueError", "NoneType"]


async def test_a_failed_batch_fails_every_result_in_it_and_the_next_one_runs() -> None:
    apply = Recorder(fail=True)
    batches = Batcher(apply, most=8)
    outcomes = await asyncio.gather(*(batches.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    apply.fail = False
    await batches.submit(9)
    assert apply.batches[-1] == [9]


async def test_a_handler_cancelled_while_waiting_leaves_the_others_alone() -> None:
    apply = Recorder()
    batches = Batcher(apply, most=8)
    gone = asyncio.create_task(batches.submit(1))
    kept = asyncio.create_task(batches.submit(2))
    await asyncio.sleep(0.001)
    gone.cancel()
    await kept
    with pytest.raises(asyncio.CancelledError):
        await gone
