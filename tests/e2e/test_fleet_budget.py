"""Two llm_workers, one Moonshot account: the account's budget holds for the fleet.

Each worker is allowed MOONSHOT_CONCURRENCY=2 calls at once and would take eight
pages at once (LLM_CONCURRENCY); with the budget shared through Redis, the fake
Moonshot never has more than two calls in flight, whichever worker makes them.
Per process, as before REDIS_URL, it would have had four.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from services.devstack.procs import Stack
from tests.support.reader import Reader
from tests.support.stack import running_stack

pytestmark = pytest.mark.e2e

BUDGET = 2
STORIES = 6


@pytest.fixture(scope="module")
def fleet(amqp_url: str, redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        amqp_url,
        tmp_path_factory.mktemp("fleet"),
        name="fleet",
        gateways=1,
        redis_url=redis,
        moonshot_ttft=0.3,
        moonshot_tps=60.0,
        extra_env={"MOONSHOT_CONCURRENCY": str(BUDGET), "MOONSHOT_RPM": "600", "LLM_CONCURRENCY": "8"},
    ) as stack:
        stack.start_worker("llm_worker", 1)
        yield stack


def calls_made(metrics: str) -> int:
    """Moonshot calls one llm_worker made (storybook_upstream_call_seconds_count)."""
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in metrics.splitlines()
        if line.startswith("storybook_upstream_call_seconds_count{") and 'upstream="moonshot"' in line
    )


async def test_two_llm_workers_never_exceed_one_shared_budget(fleet: Stack) -> None:
    readers = [Reader(fleet.gateway_url) for _ in range(STORIES)]
    started = time.monotonic()
    try:
        for n, reader in enumerate(readers):
            await reader.start(f"小熊第{n}次去森林里找蜂蜜", age=5, language="zh")

        async def first_page(reader: Reader) -> None:
            while True:
                if (await reader.story())["pages"][0]["status"] == "done":
                    return
                await asyncio.sleep(0.3)

        async with asyncio.timeout(120):
            await asyncio.gather(*(first_page(r) for r in readers))
    finally:
        for reader in readers:
            await reader.close()
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"http://127.0.0.1:{fleet.config.moonshot_port}/_fake/stats")).json()
        per_worker = [
            calls_made((await http.get(f"{fleet.ops_urls[name]}/metrics")).text)
            for name in ("llm_worker", "llm_worker-1")
        ]
    print(
        f"{STORIES} stories' first pages in {time.monotonic() - started:.1f}s: Moonshot saw at most "
        f"{stats['peak_in_flight']} calls in flight (budget {BUDGET}); calls per worker {per_worker}"
    )
    assert stats["peak_in_flight"] <= BUDGET, "the fleet stayed within the account's budget"
    assert stats["peak_in_flight"] == BUDGET, "the budget was used to the full"
    assert all(per_worker), "both workers wrote pages, each within the one budget"
