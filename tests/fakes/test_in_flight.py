"""Both fakes count the upstream requests they are serving at once (what the benchmark's
capacity phase reads): the current count, the peak, and its integral over time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from services.fakes.serving import BackgroundServer, InFlight
from tests.fakes.conftest import KEY

SLOW = 1.0  # seconds each request is held
AT_ONCE = 3


async def stats_of(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    result: dict[str, Any] = (await http.get(f"{url}/_fake/stats")).json()
    return result


def test_the_integral_is_read_at_the_clock_it_is_reported_with() -> None:
    counter = InFlight()
    counter.enter()
    counter.enter()
    time.sleep(0.05)
    stats = counter.as_dict()
    # Nothing changed since the second start: two requests accrued from then until `clock`.
    since = stats["last_start"]
    expected = since["in_flight_seconds"] + 2 * (stats["clock"] - since["at"])
    assert stats["in_flight_seconds"] == pytest.approx(expected)
    assert (stats["in_flight"], stats["peak_in_flight"]) == (2, 2)
    counter.leave()
    counter.leave()
    assert counter.as_dict()["in_flight"] == 0 and counter.peak == 2


async def test_jimeng_counts_slow_generations_in_flight(
    start_jimeng: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_jimeng(image_seconds=SLOW)
    idle = await stats_of(http, server.url)
    assert (idle["in_flight"], idle["peak_in_flight"], idle["first_start"]) == (0, 0, None)

    async def draw(n: int) -> None:
        response = await http.post(
            f"{server.url}/v1/images/generations",
            json={"prompt": f"picture {n}", "ratio": "1:1"},
            headers={"Authorization": "Bearer sess-good"},
        )
        assert len(response.json()["data"]) == 4

    await asyncio.gather(*(draw(n) for n in range(AT_ONCE)))
    after = await stats_of(http, server.url)

    assert after["in_flight"] == 0 and after["peak_in_flight"] == AT_ONCE
    # Each request was held at least SLOW seconds: the integral has at least that much of each.
    assert after["in_flight_seconds"] >= AT_ONCE * SLOW
    assert after["first_start"]["at"] <= after["last_start"]["at"] <= after["peak_in_flight_at"]


async def test_moonshot_counts_a_stream_until_it_ends(
    start_moonshot: Callable[..., BackgroundServer], http: httpx.AsyncClient
) -> None:
    server = start_moonshot(ttft=SLOW, tps=0.0)
    client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=10)
    try:
        streams = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="moonshot-v1-8k", messages=[{"role": "user", "content": f"hi {n}"}], stream=True
                )
                for n in range(AT_ONCE)
            )
        )
        for stream in streams:
            assert [chunk async for chunk in stream]
        after = await stats_of(http, server.url)
    finally:
        await client.close()

    assert after["in_flight"] == 0 and after["peak_in_flight"] == AT_ONCE
    # The handler returns at once and the first chunk goes before the ttft wait: only a
    # count that lasts until the stream ends holds each request for SLOW seconds.
    assert after["in_flight_seconds"] >= AT_ONCE * SLOW
