"""Message contracts shared by the gateway and both workers.

Every message that crosses RabbitMQ is one of the pydantic models below. They are
the only place a field name is spelled; a worker and the gateway that disagree on a
field fail validation loudly instead of losing work quietly.

Flow (see README "Architecture"):
  gateway --OutlineTask/PageTask--> llm.tasks --> llm_worker
  llm_worker --ImageTask--> image.tasks --> image_worker
  workers --results (OutlineReady, PageTextDone, ...)--> gateway.results --> gateway
  llm_worker --TextDelta--> story.live (fan-out, not durable) --> every gateway replica
  gateway --LiveEvent (durable, with seq)--> story.live --> every gateway replica
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from services.common import events
from services.common.events import ErrorInfo as ErrorInfo  # spelled with the reader events

Language = Literal["zh", "en"]

MAX_PREMISE = 500
MAX_ACTION = 300


class Contract(BaseModel):
    # Unknown fields are ignored so that a newer producer can add a field without
    # breaking an older consumer during a rolling deploy.
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------- outline


class Character(Contract):
    name: str
    # Fixed visual description repeated in every illustration prompt so that the
    # same character looks the same on every page.
    look: str


class Outline(Contract):
    title: str
    characters: list[Character] = Field(default_factory=list)
    style: str
    setting: str = ""
    # One line per planned page.
    arc: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- tasks


class StoryBrief(Contract):
    """What the reader asked for; travels with every task so workers stay stateless."""

    premise: str
    age: int
    language: Language
    style: str
    total_pages: int
    # The child's own hero, when the parent gave one: its name, and their drawing (a
    # media path) that the character sheet is drawn from.
    hero_name: str | None = None
    hero_picture: str = ""


class PageSoFar(Contract):
    index: int
    text: str
    # What the reader chose at the end of this page (choice text or typed action).
    chosen: str | None = None


class OutlineTask(Contract):
    kind: Literal["outline"] = "outline"
    story_id: str
    brief: StoryBrief
    attempt: int = 1


class PageTask(Contract):
    kind: Literal["page"] = "page"
    story_id: str
    page: int
    brief: StoryBrief
    outline: Outline
    story_so_far: list[PageSoFar] = Field(default_factory=list)
    # What the reader wants to happen on this page (None for the first page).
    direction: str | None = None
    # True when the reader typed it (not one of the offered choices): it is judged first.
    direction_typed: bool = False
    attempt: int = 1
    # Attempt number the picture of this page is drawn under (see ImageTask.attempt).
    image_attempt: int = 1

    @property
    def is_last(self) -> bool:
        return self.page >= self.brief.total_pages - 1


LlmTask = Annotated[OutlineTask | PageTask, Field(discriminator="kind")]
llm_task_adapter: TypeAdapter[OutlineTask | PageTask] = TypeAdapter(LlmTask)


SHEET_PAGE = -1  # the page number of a story's character sheet


def sheet_key(characters: list[Character], style: str) -> str:
    """Names a character sheet by what it shows: the characters' looks and the style.

    The sheet is asked for while the outline is still being written; if that attempt
    fails and the next one invents other characters, their sheet has another key, so
    a page is never drawn from (and a reader never shown) the sheet of a lost outline.
    """
    shown = [[c.name, c.look] for c in characters] + [style]
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode()).hexdigest()[:16]


def sheet_prompt(characters: list[Character], style: str) -> str:
    """The character sheet: every main character, full figure, in the story's style.

    Here, not with the page prompts, because two services ask for a sheet: the writer
    as soon as the looks are written, and the gateway when a reader asks for it again.
    """
    looks = "; ".join(f"{c.name}: {c.look}" for c in characters) or "the main character"
    return (
        f"Character sheet for a children's picture book, {style}. "
        f"Each character shown full figure, standing side by side, facing the viewer, "
        f"on a plain light background: {looks}. "
        "Clear shapes and colours, friendly expressions, no text or letters."
    )


class ImageTask(Contract):
    story_id: str
    page: int
    prompt: str
    negative_prompt: str = ""
    ratio: str = "4:3"
    # A redraw asks again with a higher attempt; results of older attempts are ignored.
    attempt: int = 1
    # "sheet": the story's character sheet (page SHEET_PAGE), drawn once after the outline.
    # "page": a page, drawn with the character sheet as its reference when there is one.
    kind: Literal["page", "sheet"] = "page"
    use_sheet: bool = False
    # The sheet's key (sheet_key): which sheet a "sheet" task draws, or a page uses.
    sheet: str = ""
    # Names this request, so a picture asked for twice is drawn once (image_worker.claims).
    request: str = ""
    # A "sheet" task of a story with the child's own hero: that picture (a media path)
    # is the sheet's reference, as the sheet is every page's.
    hero: str = ""


image_task_adapter: TypeAdapter[ImageTask] = TypeAdapter(ImageTask)


# --------------------------------------------------------------------------- results


class OutlineReady(Contract):
    kind: Literal["outline.ready"] = "outline.ready"
    story_id: str
    outline: Outline
    attempt: int = 1


class PageTextDone(Contract):
    kind: Literal["page.text.done"] = "page.text.done"
    story_id: str
    page: int
    text: str
    choices: list[str]
    image_prompt: str
    attempt: int = 1
    # A kind word for the reader when their typed idea was set aside.
    note: str | None = None
    # What the picture shows, in the story's language (its alt text); older writers send none.
    alt: str | None = None


class PageFailed(Contract):
    kind: Literal["page.failed"] = "page.failed"
    story_id: str
    page: int
    error: ErrorInfo
    attempt: int = 1


class ImageReady(Contract):
    kind: Literal["image.ready"] = "image.ready"
    story_id: str
    page: int
    # The picture's key in the media store (media.py); the gateway serves it under /media/.
    media_path: str
    attempt: int = 1
    # How it was drawn: "character_sheet" (with the sheet as reference) or "text_only";
    # with `note` saying why a page that should have used the sheet did not.
    reference: str = "text_only"
    note: str | None = None
    sheet: str = ""  # for the character sheet: its key


class ImageFailed(Contract):
    kind: Literal["image.failed"] = "image.failed"
    story_id: str
    page: int
    error: ErrorInfo
    attempt: int = 1
    sheet: str = ""  # for the character sheet: its key


class ImageRequested(Contract):
    """The llm_worker has the illustration prompt and has asked for the picture."""

    kind: Literal["image.requested"] = "image.requested"
    story_id: str
    page: int
    prompt: str
    attempt: int = 1


class UsageCounts(BaseModel):
    """The six cost counters: what a worker reports (UsageReport) and what the store
    keeps and shows per story and per day (gateway.store.views.Cost). Fields only: the
    message and the view each bring their own configuration."""

    tokens_in: int = 0
    tokens_out: int = 0
    llm_calls: int = 0
    image_calls: int = 0
    pictures: int = 0
    retries: int = 0


class UsageReport(UsageCounts, Contract):
    """What one upstream attempt cost, counted whether or not its result is used."""

    kind: Literal["usage"] = "usage"
    story_id: str
    # Who the image calls went to ("jimeng" or "ark"); llm calls always go to Moonshot.
    provider: str = ""


class PageWaiting(Contract):
    """The writer waits out a temporary Moonshot failure before trying the page again.

    Not a failure: the task is parked in the broker and comes back by itself; the
    reader is told that the page waits, why, and for how long.
    """

    kind: Literal["page.waiting"] = "page.waiting"
    story_id: str
    page: int
    attempt: int = 1  # the page's text attempt (as in PageFailed)
    tries: int  # calls to Moonshot for this page so far, the failed one included
    # "llm_busy": Moonshot answered that it is rate-limited or overloaded;
    # "llm_unreachable": it did not answer, answered 5xx, or its stream broke off.
    reason: Literal["llm_busy", "llm_unreachable"]
    retry_in: float  # seconds until the next try
    retry_at: float  # unix time of the next try


class PageResumed(Contract):
    """Moonshot answers again after a wait: the page is being written."""

    kind: Literal["page.resumed"] = "page.resumed"
    story_id: str
    page: int
    attempt: int = 1
    tries: int


AnyResult: TypeAlias = (
    OutlineReady
    | PageTextDone
    | PageFailed
    | PageWaiting
    | PageResumed
    | ImageReady
    | ImageFailed
    | ImageRequested
    | UsageReport
)
Result = Annotated[AnyResult, Field(discriminator="kind")]
result_adapter: TypeAdapter[AnyResult] = TypeAdapter(Result)


# --------------------------------------------------------------------------- live


class TextDelta(Contract):
    """Text being written; not durable, never replayed."""

    kind: Literal["delta"] = "delta"
    story_id: str
    page: int
    attempt: int
    # Character offset of `delta` in the page text: a reader sets
    # text = text[:offset] + delta, so a restarted attempt (offset 0) replaces
    # what an abandoned attempt wrote.
    offset: int
    delta: str
    # Unix time the writer published it: lets a reader (and the benchmark) measure
    # what the pipeline adds between the writer and the socket.
    ts: float = 0.0


class TextReset(Contract):
    """The page is being written again from the start: discard its partial text."""

    kind: Literal["reset"] = "reset"
    story_id: str
    page: int
    attempt: int


class SyncHint(Contract):
    """The store may hold events a replica did not fan out; readers catch up from it."""

    kind: Literal["sync"] = "sync"
    story_id: str
    last_seq: int


class LiveEvent(Contract):
    """A durable story event after the gateway stored it, fanned out to every replica."""

    kind: Literal["event"] = "event"
    story_id: str
    seq: int
    type: str  # one of services.common.events.DURABLE
    data: dict[str, object]  # that event's fields, and `at`

    @model_validator(mode="after")
    def _a_reader_event(self) -> LiveEvent:
        events.check_stored(self.type, self.data)
        return self


Live = Annotated[TextDelta | TextReset | SyncHint | LiveEvent, Field(discriminator="kind")]
live_adapter: TypeAdapter[TextDelta | TextReset | SyncHint | LiveEvent] = TypeAdapter(Live)


# --------------------------------------------------------------------------- control


class JimengSessions(Contract):
    """An operator's command: the image workers' jimeng session ids, effective at once."""

    kind: Literal["jimeng.sessions"] = "jimeng.sessions"
    mode: Literal["set", "add", "remove"]
    ids: list[str]
    # Unix time the operator sent it (0: sent by an older doctor). A kept command older
    # than the last change of the workers' JIMENG_SESSION_ID is not applied at start.
    at: float = 0.0


class SessionsEnvironment(Contract):
    """Which JIMENG_SESSION_ID the image workers started with, and since when."""

    kind: Literal["jimeng.environment"] = "jimeng.environment"
    # The one the last worker to start had, and since when it has been seen.
    fingerprint: str
    # Unix time it was first seen; 0 when it is the first one ever recorded (nothing
    # says when it was set, so an older kept command still applies over it).
    since: float
    # When each recent one was first seen: replicas started with different values, in
    # turn, keep their own first sighting instead of resetting each other's.
    seen: dict[str, float] = Field(default_factory=dict)


# ------------------------------------------------------------- what the model writes


class PageDraft(Contract):
    """The JSON object the model writes for a page, in this order."""

    illustration: str
    text: str
    choices: list[str] = Field(default_factory=list)
    # One sentence saying what the picture shows, in the story's language: the picture's
    # alt text for readers who cannot see it (the page, the share page and the EPUB).
    alt: str = ""
