"""The outbox relay marks each row as soon as the broker has it (a real SQLite store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.topology import Topology
from services.gateway.messaging.outbox import OutboxRelay
from services.gateway.store.repo import Store


class BrokerFailingAt:
    """Confirms every publish but the n-th (1-based), which the broker refuses."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0
        self.confirmed: list[str] = []

    async def publish(self, message: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise ConnectionError("the broker went away")
        self.confirmed.append(message["story_id"])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(f"sqlite+aiosqlite:///{tmp_path / 'stories.db'}", topology=Topology("t"))
    await s.create_schema()
    yield s
    await s.close()


async def test_one_failure_does_not_republish_rows_already_sent(store: Store) -> None:
    for n in range(4):
        await store.create_story(premise=f"故事{n}", age=6, language="zh", style="", total_pages=4)
    rows = await store.pending_outbox(older_than=timedelta(0))
    assert len(rows) == 4
    broker = BrokerFailingAt(3)
    relay = OutboxRelay(broker=broker, topology=Topology("t"), store=store)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="did not confirm"):
        await relay.publish(rows)
    left = await store.pending_outbox(older_than=timedelta(0))
    assert [r.id for r in left] == [r.id for r in rows[2:]], "the two rows sent are marked"

    await relay.publish(left)
    assert broker.confirmed == [r.story_id for r in rows], "each row sent once, in order"
    assert not await store.pending_outbox(older_than=timedelta(0))
