"""Worker results applied in batches: what is waiting shares one transaction.

Each delivery's handler hands its result here and waits for the outcome of the batch
it joined; its message is settled (acknowledged, or requeued) only then, so a result
is acknowledged after its commit and the publishing of what it changed, never before.

There is no timer: the first result starts a batch at once, and whatever arrives while
a batch is being applied makes up the next one. An idle gateway applies a result with
no added wait; a busy one pays one commit for many results. Results join batches in
the order they were delivered, and a batch is applied in that order, so one story's
results keep their order.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

# Outcomes of a batch, one per item: None when it was applied, else why it was not.
# Items waiting for a batch, each with the future its handler waits on.
Waiting = list[tuple[T, asyncio.Future[None]]]
Apply = Callable[[Sequence[T]], Awaitable[Sequence[BaseException | None]]]


class Batcher(Generic[T]):
    def __init__(self, apply: Apply[T], *, most: int) -> None:
        self.apply, self.most = apply, most
        self._waiting: Waiting[T] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Wait until `item` is applied with its batch; raise what kept it from that."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._draining is None or self._draining.done():
            # A context of its own: the batch serves many stories, so it must not carry
            # the log context (story, request) of the delivery that happened to start it.
            self._draining = asyncio.create_task(
                self._drain(), name="result-batches", context=contextvars.Context()
            )
        await done

    async def _drain(self) -> None:
        # One yield first: deliveries that arrived in the same read join this batch.
        await asyncio.sleep(0)
        while self._waiting:
            batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
            try:
                outcomes = await self.apply([item for item, _ in batch])
            except Exception as exc:
                outcomes = [exc] * len(batch)
            except BaseException as exc:
                # Stopping: the handlers still waiting settle their messages (requeued).
                _settle(batch + self._waiting, [exc] * (len(batch) + len(self._waiting)))
                raise
            _settle(batch, outcomes)


def _settle(batch: Waiting[T], outcomes: Sequence[BaseException | None]) -> None:
    for (_, done), outcome in zip(batch, outcomes, strict=True):
        if done.done():
            continue
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)
