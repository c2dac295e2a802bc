"""A picture asked for twice is drawn once; a dead worker's claim is taken over.

Each behaviour holds for both kinds of claim: files (one machine) and Redis (a fleet).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.image_worker.claims import Claims, FileClaims, RedisClaims
from tests.support.infra import unique

STALE = 600.0


@pytest.fixture(params=["file", "redis"])
async def claims(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Claims]:
    if request.param == "file":
        yield FileClaims(tmp_path / ".claims")
        return
    client = Redis.from_url(request.getfixturevalue("redis"))
    yield RedisClaims(client, prefix=unique("tclaims-"), lease=STALE)
    await client.aclose()


async def test_the_first_request_draws_and_a_second_one_is_dropped(claims: Claims) -> None:
    assert await claims.claim("s", "p1-a1", "first", stale_after=STALE) == ("mine", {})
    assert await claims.claim("s", "p1-a1", "second", stale_after=STALE) == ("taken", {})
    # The first request's own retry or redelivery goes on.
    assert await claims.claim("s", "p1-a1", "first", stale_after=STALE) == ("mine", {})
    # Another picture (a redraw is another attempt) is not held by this claim.
    assert await claims.claim("s", "p1-a2", "redraw", stale_after=STALE) == ("mine", {})
    # Nor is the same page of another story.
    assert await claims.claim("t", "p1-a1", "other", stale_after=STALE) == ("mine", {})


async def test_a_drawn_picture_gives_its_result_again_to_whoever_asks(claims: Claims) -> None:
    await claims.claim("s", "p0-a1", "first", stale_after=STALE)
    result = {"kind": "image.ready", "story_id": "s", "page": 0, "media_path": "s/p0-a1-x.webp"}
    await claims.finish("s", "p0-a1", "first", result)
    assert await claims.claim("s", "p0-a1", "second", stale_after=STALE) == ("done", result)
    assert await claims.claim("s", "p0-a1", "first", stale_after=STALE) == ("done", result)


async def test_a_claim_left_by_a_dead_worker_is_taken_over(claims: Claims) -> None:
    stale = 0.3
    await claims.claim("s", "p2-a1", "dead", stale_after=stale)
    assert await claims.claim("s", "p2-a1", "alive", stale_after=stale) == ("taken", {})
    if isinstance(claims, FileClaims):
        old = time.time() - stale - 1
        os.utime(claims.path("s", "p2-a1"), (old, old))
    else:
        await asyncio.sleep(stale + 0.1)  # the lease ends
    # Every worker uses the same staleness; the live taker's claim holds against the dead.
    assert await claims.claim("s", "p2-a1", "alive", stale_after=stale) == ("mine", {})
    assert await claims.claim("s", "p2-a1", "dead", stale_after=stale) == ("taken", {})


async def test_a_failed_picture_may_be_drawn_by_the_next_request(claims: Claims) -> None:
    await claims.claim("s", "p3-a1", "first", stale_after=STALE)
    await claims.release("s", "p3-a1", "someone-else")  # not theirs to release
    assert await claims.claim("s", "p3-a1", "second", stale_after=STALE) == ("taken", {})
    await claims.release("s", "p3-a1", "first")
    assert await claims.claim("s", "p3-a1", "second", stale_after=STALE) == ("mine", {})


async def test_one_of_many_simultaneous_requests_draws(claims: Claims) -> None:
    answers = await asyncio.gather(
        *(claims.claim("s", "p5-a1", f"request-{n}", stale_after=STALE) for n in range(20))
    )
    assert sorted(status for status, _ in answers) == ["mine"] + ["taken"] * 19


def test_a_claim_file_being_written_counts_as_taken(tmp_path: Path) -> None:
    claims = FileClaims(tmp_path)
    claims.path("s", "p4-a1").parent.mkdir(parents=True)
    claims.path("s", "p4-a1").touch()  # created, not yet written
    assert asyncio.run(claims.claim("s", "p4-a1", "second", stale_after=STALE)) == ("taken", {})


async def test_a_request_that_reached_the_provider_is_not_asked_again(claims: Claims) -> None:
    await claims.claim("s", "p6-a1", "first", stale_after=STALE)
    await claims.mark("s", "p6-a1", "first", "submitted")
    status, _ = await claims.claim("s", "p6-a1", "first", stale_after=STALE)
    assert status == "submitted", "a redelivery finds the drawing asked for, outcome unknown"
    url = "https://provider.example/p.png"
    await claims.mark("s", "p6-a1", "first", "drawn", url=url, used=True, why=None)
    status, held = await claims.claim("s", "p6-a1", "first", stale_after=STALE)
    assert status == "drawn" and held["url"] == url and held["used"] is True
    assert await claims.claim("s", "p6-a1", "second", stale_after=STALE) == ("taken", {})


async def test_an_answered_call_that_cost_nothing_may_be_tried_again(claims: Claims) -> None:
    await claims.claim("s", "p7-a1", "first", stale_after=STALE)
    await claims.mark("s", "p7-a1", "first", "submitted")
    await claims.mark("s", "p7-a1", "first", "drawing")  # e.g. a slow -1000: nothing drawn, nothing paid
    assert (await claims.claim("s", "p7-a1", "first", stale_after=STALE))[0] == "mine"
