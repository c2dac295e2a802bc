"""What a reader's socket receives: one model per event type, each type spelled once.

The gateway stores the durable ones with the story's next `seq` (and the time, `at`)
and replays them to a reader who reconnects; the others pass once. README's event
table, the AsyncAPI document and the page's handler list (`applyEvent` in
static/story.js) are checked against EVENTS by tests, so a new event cannot be
forgotten in one of them.

A frame on the socket is `{"type": ..., "seq"?: ..., "at"?: ..., **fields}`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class ErrorInfo(BaseModel):
    """An error a reader or operator sees: a stable code and a sentence to act on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str
    message: str


class ReaderEvent(BaseModel):
    # Unknown fields are ignored: an older replica replays what a newer one stored.
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: ClassVar[str]
    durable: ClassVar[bool] = True
    # Fields left out of the frame when they are None (README: "when ...").
    optional: ClassVar[tuple[str, ...]] = ()

    def fields(self) -> dict[str, Any]:
        """The event's fields as the frame carries them (without type, seq and at)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if not (k in self.optional and v is None)}

    def frame(self, **extra: Any) -> dict[str, Any]:
        return {"type": self.type, **extra, **self.fields()}


# ------------------------------------------------------------------ durable: pages


class PageStarted(ReaderEvent):
    type = "page.started"
    page: int


class PageTextDone(ReaderEvent):
    type = "page.text.done"
    optional = ("note", "alt")
    page: int
    text: str
    choices: list[str]
    # Why a typed idea was gently set aside.
    note: str | None = None
    # What the page's picture shows, in the story's language: its alt text.
    alt: str | None = None


class PageChosen(ReaderEvent):
    type = "page.chosen"
    page: int
    choice: int | None = None
    action: str | None = None


class PageFailed(ReaderEvent):
    type = "page.failed"
    page: int
    error: ErrorInfo


class PageWaiting(ReaderEvent):
    """The writer waits out a temporary Moonshot failure; the page is not lost."""

    type = "page.waiting"
    page: int
    tries: int
    reason: Literal["llm_busy", "llm_unreachable"]
    retry_in: float
    retry_at: str  # ISO 8601, UTC


class PageResumed(ReaderEvent):
    type = "page.resumed"
    page: int
    tries: int


class PageImageStarted(ReaderEvent):
    type = "page.image.started"
    page: int
    attempt: int


class PageImageDone(ReaderEvent):
    type = "page.image.done"
    page: int
    url: str
    reference: str = "text_only"  # "character_sheet" or "text_only"
    note: str | None = None  # why not from the sheet


class PageImageFailed(ReaderEvent):
    type = "page.image.failed"
    page: int
    error: ErrorInfo


# ------------------------------------------------------------------ durable: the story


class StoryOutlined(ReaderEvent):
    type = "story.outlined"
    title: str


class StorySheetStarted(ReaderEvent):
    type = "story.sheet.started"


class StorySheetDone(ReaderEvent):
    type = "story.sheet.done"
    url: str


class StorySheetFailed(ReaderEvent):
    type = "story.sheet.failed"
    error: ErrorInfo


class StoryEnded(ReaderEvent):
    type = "story.ended"


# ------------------------------------------------------------------ passing


class PageTextDelta(ReaderEvent):
    """Text being written: set `text = text[:offset] + delta`."""

    type = "page.text.delta"
    durable = False
    page: int
    attempt: int
    offset: int
    delta: str
    ts: float = 0.0  # when the writer sent it (unix time)


class PageTextReset(ReaderEvent):
    """The page is written again from the start: discard its partial text."""

    type = "page.text.reset"
    durable = False
    page: int
    attempt: int


class SocketError(ReaderEvent):
    """A frame the reader's client sent was refused."""

    type = "error"
    durable = False
    error: ErrorInfo


EVENTS: dict[str, type[ReaderEvent]] = {
    m.type: m
    for m in (
        PageStarted,
        StoryOutlined,
        PageImageStarted,
        PageTextDelta,
        PageTextReset,
        PageTextDone,
        PageChosen,
        PageImageDone,
        StorySheetDone,
        StorySheetFailed,
        StorySheetStarted,
        PageImageFailed,
        PageFailed,
        PageWaiting,
        PageResumed,
        StoryEnded,
        SocketError,
    )
}
DURABLE = frozenset(t for t, m in EVENTS.items() if m.durable)
# A page's events that say whether its writer waits now (the latest of them decides).
WAIT_EVENTS = (PageWaiting.type, PageResumed.type, PageStarted.type)


def check_stored(type_: str, data: dict[str, Any]) -> None:
    """Raise ValueError unless `data` is a durable event of `type_` (plus its `at`)."""
    model = EVENTS.get(type_)
    if model is None or not model.durable:
        raise ValueError(f"{type_!r} is not a stored reader event (see services.common.events)")
    model.model_validate(data)
