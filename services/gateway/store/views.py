"""What the store hands out: typed views of a story, its library entry, its shared form
and the operator's usage. The HTTP API declares them as `response_model`, so the
OpenAPI document shows every answer, and the exports take them as they are.

The field names and their order are the public contract of README "The public
contract": a client written against it keeps working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from services.common.contracts import UsageCounts


class View(BaseModel):
    pass


class ErrorView(View):
    code: str
    message: str


class Waiting(View):
    """The writer waits out a Moonshot rate limit or outage (as in `page.waiting`)."""

    reason: str | None = None
    tries: int | None = None
    retry_in: int | float | None = None
    retry_at: str | None = None


class Chosen(View):
    choice: int | None = None
    action: str | None = None


class ImageView(View):
    status: Literal["pending", "ready", "failed", "none"]
    url: str | None = None
    error: ErrorView | None = None
    started_at: str | None = None
    reference: str | None = None
    note: str | None = None


class PageView(View):
    index: int
    status: Literal["writing", "done", "failed"]
    text: str
    choices: list[str]
    chosen: Chosen | None = None
    error: ErrorView | None = None
    waiting: Waiting | None = None
    image: ImageView
    # What the picture shows, in the story's language (its alt text).
    alt: str | None = None


class SheetView(View):
    status: str
    url: str | None = None


class Cost(UsageCounts, View):
    """What a story (or a day) cost: the counters the workers report."""


class StoryView(View):
    story_id: str
    title: str | None = None
    status: Literal["in_progress", "ended", "failed"]
    premise: str
    age: int
    language: str
    style: str
    total_pages: int
    created_at: str | None = None
    last_seq: int
    usage: Cost
    character_sheet: SheetView
    pages: list[PageView]


class SharedImage(View):
    status: str
    url: str | None = None


class SharedPage(View):
    index: int
    status: str
    text: str
    image: SharedImage
    alt: str | None = None


class SharedStory(View):
    """A shared story: the finished pages and pictures; no choices, token or premise."""

    title: str | None = None
    status: str
    language: str
    total_pages: int
    character_sheet: SheetView
    pages: list[SharedPage]

    @classmethod
    def of(cls, story: StoryView) -> SharedStory:
        """Only what is declared here (and in SharedPage, SharedImage) is read from the story."""
        return cls.model_validate(story, from_attributes=True)


class Summary(View):
    """A story in its device's library."""

    story_id: str
    title: str | None = None
    status: str
    language: str
    created_at: str | None = None
    pages: int
    cover_url: str | None = None
    # The story waits for the reader's choice, not for the writer.
    awaiting_choice: bool = False


class Library(View):
    stories: list[Summary]


class Created(View):
    story_id: str
    token: str


class Accepted(View):
    status: Literal["accepted"] = "accepted"


class Shared(View):
    share_id: str
    url: str


class PerUpstream(View):
    calls: int = 0
    pictures: int = 0


class Counted(View):
    stories: int = 0


class UsageTotals(Cost, Counted):
    """Stories started, and what they cost (the counters of `Cost`)."""


class UsageDay(UsageTotals):
    day: str
    # Only on days an upstream was called (as before there were views).
    upstreams: dict[str, PerUpstream] | None = None

    @model_serializer(mode="wrap")
    def _without_empty_upstreams(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("upstreams") is None:
            data.pop("upstreams", None)
        return data


class UsageView(View):
    days: list[UsageDay]
    totals: UsageTotals
    upstreams: dict[str, PerUpstream]
