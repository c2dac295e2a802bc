"""A picture asked for twice is drawn once; a dead worker's claim is taken over."""

from __future__ import annotations

import os
import time
from pathlib import Path

from services.image_worker import claims

STALE = 600.0


def test_the_first_request_draws_and_a_second_one_is_dropped(tmp_path: Path) -> None:
    assert claims.claim(tmp_path, "p1-a1", "first", stale_after=STALE) == ("mine", {})
    assert claims.claim(tmp_path, "p1-a1", "second", stale_after=STALE) == ("taken", {})
    # The first request's own retry or redelivery goes on.
    assert claims.claim(tmp_path, "p1-a1", "first", stale_after=STALE) == ("mine", {})
    # Another picture (a redraw is another attempt) is not held by this claim.
    assert claims.claim(tmp_path, "p1-a2", "redraw", stale_after=STALE) == ("mine", {})


def test_a_drawn_picture_gives_its_result_again_to_whoever_asks(tmp_path: Path) -> None:
    claims.claim(tmp_path, "p0-a1", "first", stale_after=STALE)
    result = {"kind": "image.ready", "story_id": "s", "page": 0, "media_path": "s/p0-a1-x.webp"}
    claims.finish(tmp_path, "p0-a1", "first", result)
    assert claims.claim(tmp_path, "p0-a1", "second", stale_after=STALE) == ("done", result)
    assert claims.claim(tmp_path, "p0-a1", "first", stale_after=STALE) == ("done", result)


def test_a_claim_left_by_a_dead_worker_is_taken_over(tmp_path: Path) -> None:
    claims.claim(tmp_path, "p2-a1", "dead", stale_after=STALE)
    old = time.time() - STALE - 1
    os.utime(claims.claim_path(tmp_path, "p2-a1"), (old, old))
    assert claims.claim(tmp_path, "p2-a1", "alive", stale_after=STALE) == ("mine", {})
    assert claims.claim(tmp_path, "p2-a1", "dead", stale_after=STALE) == ("taken", {})


def test_a_failed_picture_may_be_drawn_by_the_next_request(tmp_path: Path) -> None:
    claims.claim(tmp_path, "p3-a1", "first", stale_after=STALE)
    claims.release(tmp_path, "p3-a1", "someone-else")  # not theirs to release
    assert claims.claim(tmp_path, "p3-a1", "second", stale_after=STALE) == ("taken", {})
    claims.release(tmp_path, "p3-a1", "first")
    assert claims.claim(tmp_path, "p3-a1", "second", stale_after=STALE) == ("mine", {})


def test_a_claim_being_written_counts_as_taken(tmp_path: Path) -> None:
    claims.claim_path(tmp_path, "p4-a1").touch()  # created, not yet written
    assert claims.claim(tmp_path, "p4-a1", "second", stale_after=STALE) == ("taken", {})


def test_a_request_that_reached_the_provider_is_never_drawn_again(tmp_path: Path) -> None:
    assert claims.claim(tmp_path, "p0-a1", "req-1", stale_after=60)[0] == "mine"
    claims.mark(tmp_path, "p0-a1", "req-1", "submitted")
    # Its worker died mid-draw: the redelivered copy must not ask again (it may be paid).
    assert claims.claim(tmp_path, "p0-a1", "req-1", stale_after=60)[0] == "submitted"
    claims.mark(tmp_path, "p0-a1", "req-1", "drawn", url="https://cdn/x.webp", used=True, why=None)
    status, held = claims.claim(tmp_path, "p0-a1", "req-1", stale_after=60)
    assert status == "drawn" and held["url"] == "https://cdn/x.webp" and held["used"] is True
    # Another request for the same picture waits for this one.
    assert claims.claim(tmp_path, "p0-a1", "req-2", stale_after=60)[0] == "taken"


def test_an_answered_call_that_cost_nothing_may_be_tried_again(tmp_path: Path) -> None:
    claims.claim(tmp_path, "p0-a1", "req-1", stale_after=60)
    claims.mark(tmp_path, "p0-a1", "req-1", "submitted")
    claims.mark(tmp_path, "p0-a1", "req-1", "drawing")  # e.g. a -1000 outage: nothing drawn
    assert claims.claim(tmp_path, "p0-a1", "req-1", stale_after=60)[0] == "mine"
