"""The store's ground floor: engines and transactions, and what every job shares.

Each mutation locks the story row, checks the state, changes it, appends durable
events with the next `seq` and, when work must follow, writes it to the outbox. The
caller publishes the returned events and outbox rows after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.common import contracts as c
from services.common.events import WAIT_EVENTS, ReaderEvent
from services.common.topology import Topology
from services.gateway.store import schema
from services.gateway.store.errors import NotFound
from services.gateway.store.models import Event, Outbox, Page, Story, utcnow


@dataclass
class Changes:
    """What a committed transaction asks the caller to publish."""

    events: list[c.LiveEvent] = field(default_factory=list)
    outbox: list[Outbox] = field(default_factory=list)
    last_seq: int = 0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _make_engine(url: str, *, writer: bool = True) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        # SQLite: a writing transaction takes the write lock when it begins, so two
        # writers (two gateway replicas on one file) queue up instead of failing on
        # upgrade; readers begin deferred and, in WAL mode, never wait for a writer.
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    def __init__(self, url: str, *, topology: Topology | None = None) -> None:
        self.engine = _make_engine(url)
        sqlite = url.startswith("sqlite")
        self.read_engine = _make_engine(url, writer=False) if sqlite else self.engine
        self.sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._writes = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: writers of this process queue here, in
        # order, instead of in SQLite's busy handler, which sleeps up to 100 ms a try.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if sqlite else None
        self.topo = topology or Topology()

    async def create_schema(self) -> None:
        """Bring the database to this gateway's schema (see store.schema)."""
        await schema.upgrade(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    async def ping(self) -> None:
        """Raise unless the store can write (readiness)."""
        async with self._tx() as session:
            await session.execute(select(Story.id).limit(1))

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        """A writing transaction (committed at the end, rolled back on error)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            session = await stack.enter_async_context(self._writes.begin())
            yield session
            await _write_events(session)

    # ------------------------------------------------------------------ helpers
    async def _lock_story(self, session: AsyncSession, story_id: str) -> Story:
        story = (
            await session.execute(select(Story).where(Story.id == story_id).with_for_update())
        ).scalar_one_or_none()
        if story is None:
            raise NotFound(f"No story with id {story_id!r}. Start a new story.")
        return story

    def _append(self, session: AsyncSession, story: Story, changes: Changes, event: ReaderEvent) -> None:
        now = utcnow()
        story.last_seq += 1
        story.updated_at = now
        data = event.fields()
        row = {"story_id": story.id, "seq": story.last_seq, "type": event.type, "data": data, "at": now}
        session.info.setdefault(PENDING_EVENTS, []).append(row)
        wire = _wire(data, now)
        changes.events.append(c.LiveEvent(story_id=story.id, seq=story.last_seq, type=event.type, data=wire))

    def _send(
        self, session: AsyncSession, changes: Changes, story_id: str, routing_key: str, msg: Any
    ) -> None:
        row = Outbox(routing_key=routing_key, body=msg.model_dump(mode="json"), story_id=story_id)
        session.add(row)
        changes.outbox.append(row)

    async def _pages(self, session: AsyncSession, story_id: str) -> list[Page]:
        rows = await session.execute(select(Page).where(Page.story_id == story_id).order_by(Page.index))
        return list(rows.scalars())

    @staticmethod
    def _brief(story: Story) -> c.StoryBrief:
        """The brief's fields are the story's columns of the same names, but for the hero's
        picture, kept as `hero_path` (None when there is none)."""
        brief = c.StoryBrief.model_validate(story, from_attributes=True)
        return brief.model_copy(update={"hero_picture": story.hero_path or ""})

    def _page_task(self, story: Story, pages: Sequence[Page], page: Page) -> c.PageTask:
        so_far = [
            c.PageSoFar(index=p.index, text=p.text, chosen=_chosen_text(p))
            for p in pages
            if p.index < page.index
        ]
        assert story.outline is not None
        return c.PageTask(
            story_id=story.id,
            page=page.index,
            brief=self._brief(story),
            outline=c.Outline.model_validate(story.outline),
            story_so_far=so_far,
            direction=page.direction,
            direction_typed=page.direction_typed,
            attempt=page.text_attempt,
            image_attempt=page.image_attempt,
        )

    async def _last_wait(self, session: AsyncSession, story_id: str, page: int) -> Event | None:
        """The page's latest page.waiting, page.resumed or page.started: whether the page
        waits now is read from its own history, so nothing else has to be kept in step."""
        await _write_events(session)  # this transaction's own events count too
        rows = await session.execute(
            select(Event)
            .where(Event.story_id == story_id, Event.type.in_(WAIT_EVENTS))
            .order_by(Event.seq.desc())
            .limit(50)
        )
        return next((e for e in rows.scalars() if e.data.get("page") == page), None)


# The events a writing transaction appended, written together before it commits: one
# statement for all (the ORM wrote them one by one on SQLite, which cannot return the ids
# of a many-row insert in order, and the rows' ids are never needed). A query of the
# events inside a writing transaction writes them first (see _last_wait).
PENDING_EVENTS = "storybook_pending_events"


async def _write_events(session: AsyncSession) -> None:
    rows = session.info.pop(PENDING_EVENTS, None)
    if rows:
        await session.execute(insert(Event), rows)


def _chosen_text(page: Page) -> str | None:
    if page.chosen_action is not None:
        return page.chosen_action
    if page.chosen_choice is not None and page.chosen_choice < len(page.choices):
        return page.choices[page.chosen_choice]
    return None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes; everything stored is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _wire(data: dict[str, Any], at: datetime | None) -> dict[str, Any]:
    """An event's fields as readers get them: its data and when it was stored."""
    return {**data, "at": _iso(at or utcnow())}


def _sheet_key(story: Story) -> str:
    """The key of the character sheet the story's outline asks for ("" before the outline)."""
    if story.outline is None:
        return ""
    outline = c.Outline.model_validate(story.outline)
    return c.sheet_key(outline.characters, outline.style)


def _stale_sheet(story: Story, key: str) -> bool:
    """A sheet result for other looks than the stored outline's (from a lost attempt)."""
    return bool(key) and story.outline is not None and key != _sheet_key(story)
