"""Tables of the story store (SQLite by default, PostgreSQL in production).

A change here needs its migration in store/migrations/versions (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.contracts import UsageCounts


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class Costs:
    """The cost counters of contracts.UsageCounts as columns: what a story cost, every
    attempt counted, and what a day cost."""

    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    image_calls: Mapped[int] = mapped_column(Integer, default=0)
    pictures: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)


COUNTERS = tuple(UsageCounts.model_fields)


class Story(Costs, Base):
    __tablename__ = "stories"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Only a hash of the reader's token is kept: a copy of the database opens no story.
    token_hash: Mapped[str] = mapped_column(String(64))
    premise: Mapped[str] = mapped_column(Text)
    age: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(8))
    style: Mapped[str] = mapped_column(String(200))
    total_pages: Mapped[int] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    outline: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    # The character sheet every page's picture is drawn from.
    sheet_status: Mapped[str] = mapped_column(String(16), default="pending")
    sheet_path: Mapped[str | None] = mapped_column(Text, default=None)
    # The child's own hero: a name, and their drawing (a media path) the sheet is drawn from.
    hero_name: Mapped[str | None] = mapped_column(String(40), default=None)
    hero_path: Mapped[str | None] = mapped_column(Text, default=None)
    # A read-only link to the finished story, once the reader shares it.
    share_id: Mapped[str | None] = mapped_column(String(40), unique=True, index=True, default=None)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Page(Base):
    __tablename__ = "pages"

    story_id: Mapped[str] = mapped_column(ForeignKey("stories.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="writing")  # writing|done|failed
    text: Mapped[str] = mapped_column(Text, default="")
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What the reader asked for that led to this page (choice text or typed action).
    direction: Mapped[str | None] = mapped_column(Text, default=None)
    direction_typed: Mapped[bool] = mapped_column(default=False)
    chosen_choice: Mapped[int | None] = mapped_column(Integer, default=None)
    chosen_action: Mapped[str | None] = mapped_column(Text, default=None)
    text_attempt: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    image_status: Mapped[str] = mapped_column(String(16), default="pending")
    image_attempt: Mapped[int] = mapped_column(Integer, default=1)
    image_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    image_path: Mapped[str | None] = mapped_column(Text, default=None)
    image_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # "character_sheet" or "text_only", and why a page drew from text alone.
    image_reference: Mapped[str | None] = mapped_column(String(32), default=None)
    image_note: Mapped[str | None] = mapped_column(Text, default=None)
    # What the picture shows, in the story's language: its alt text.
    image_alt: Mapped[str | None] = mapped_column(Text, default=None)
    image_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Event(Base):
    """The durable, ordered history of a story: what a reconnecting reader replays."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("story_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    story_id: Mapped[str] = mapped_column(ForeignKey("stories.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UsageDaily(Costs, Base):
    """Totals per UTC day, for the operator."""

    __tablename__ = "usage_daily"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    stories: Mapped[int] = mapped_column(Integer, default=0)


class UsageUpstreamDaily(Base):
    """Calls per upstream (moonshot, jimeng, ark) per UTC day: what each account was asked
    for. A table of its own, so a store created before it gains it without losing a row."""

    __tablename__ = "usage_upstream_daily"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(16), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    pictures: Mapped[int] = mapped_column(Integer, default=0)


class Outbox(Base):
    """Work to publish, written in the same transaction as the state that asks for it.

    A gateway that dies between commit and publish leaves the row here; the relay
    publishes it later, so an accepted choice never loses its next page.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "published_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    routing_key: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    story_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
