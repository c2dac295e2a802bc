"""Where a page's time goes: the stretches between the moments the story store recorded.

Every durable event carries `at`, the time the gateway stored it, so the reader can
split a page into stretches and set each against its part of the floor: the choice
being stored, the page's call until its illustration is complete, the whole text,
the picture. What a stretch takes beyond its floor is overhead of that part of the
pipeline (the fakes' own excess included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.options import Latency
from bench.reader import PageTimes, Reading
from bench.stats import summary

Moment = Callable[[Reading, int, PageTimes], float | None]
FloorOf = Callable[[dict[str, float], Latency], float]


def sent(_reading: Reading, _page: int, times: PageTimes) -> float | None:
    return times.start_wall


def stored(kind: str, *, previous: bool = False, story: bool = False) -> Moment:
    def moment(reading: Reading, page: int, _times: PageTimes) -> float | None:
        key = -1 if story else page - 1 if previous else page
        return reading.stored.get((key, kind))

    return moment


@dataclass(frozen=True)
class Stage:
    label: str
    start: Moment
    end: Moment
    floor: FloorOf


FIRST_PAGE = (
    Stage("POST → page.started stored", sent, stored("page.started"), lambda f, lat: 0.0),
    Stage(
        "→ story.outlined stored",
        stored("page.started"),
        stored("story.outlined", story=True),
        lambda f, lat: f["before_s"],
    ),
    Stage(
        "outlined → sheet stored",
        stored("story.outlined", story=True),
        stored("story.sheet.done", story=True),
        lambda f, lat: f["sheet_s"],
    ),
    Stage(
        "outlined → illustration stored",
        stored("story.outlined", story=True),
        stored("page.image.started"),
        lambda f, lat: f["illustration_s"],
    ),
    Stage(
        "outlined → text stored",
        stored("story.outlined", story=True),
        stored("page.text.done"),
        lambda f, lat: f["text_s"],
    ),
    Stage(
        "illustration → picture stored",
        stored("page.image.started"),
        stored("page.image.done"),
        lambda f, lat: lat.image_seconds + f["sheet_wait_s"],
    ),
)
LATER_PAGES = (
    Stage("choose → page.chosen stored", sent, stored("page.chosen", previous=True), lambda f, lat: 0.0),
    Stage(
        "page.started → illustration stored",
        stored("page.started"),
        stored("page.image.started"),
        lambda f, lat: f["illustration_s"],
    ),
    Stage(
        "page.started → text stored",
        stored("page.started"),
        stored("page.text.done"),
        lambda f, lat: f["text_s"],
    ),
    Stage(
        "illustration → picture stored",
        stored("page.image.started"),
        stored("page.image.done"),
        lambda f, lat: lat.image_seconds,
    ),
)


def page_stages(
    reading: Reading, page: int, times: PageTimes, floor: dict[str, float], latency: Latency
) -> dict[str, tuple[float, float]]:
    """label -> (seconds measured, seconds of floor) for the stretches this page has."""
    out = {}
    for stage in FIRST_PAGE if page == 0 else LATER_PAGES:
        start, end = stage.start(reading, page, times), stage.end(reading, page, times)
        if start is not None and end is not None:
            out[stage.label] = (end - start, stage.floor(floor, latency))
    return out


def aggregate(rows: list[dict[str, tuple[float, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """label -> {"measured_ms", "floor_ms", "over_ms"} summaries, in the stages' order."""
    labels: dict[str, None] = {}
    for row in rows:
        labels.update(dict.fromkeys(row))
    out = {}
    for label in labels:
        pairs = [row[label] for row in rows if label in row]
        out[label] = {
            "measured_ms": summary([m for m, _ in pairs], 1000),
            "floor_ms": summary([f for _, f in pairs], 1000),
            "over_ms": summary([m - f for m, f in pairs], 1000),
        }
    return out
