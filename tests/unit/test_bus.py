"""Metric names stay bounded however many stories are told."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from services.common.bus import _MetricNames


def destination(exchange: str, routing_key: str) -> str:
    raw = SimpleNamespace(exchange=exchange, routing_key=routing_key)
    msg: Any = SimpleNamespace(raw_message=raw, body=b"{}")
    return str(_MetricNames().get_consume_attrs_from_message(msg)["destination_name"])


def test_live_frames_of_every_story_share_one_name() -> None:
    names = {destination("storybook.live", f"story.{n:032x}") for n in range(50)}
    assert names == {"storybook.live.story.*"}


def test_work_queues_keep_their_names() -> None:
    assert destination("storybook.work", "llm.tasks") == "storybook.work.llm.tasks"
