"""Story store: every change of a story is one transaction that also appends its events.

Each mutation locks the story row, checks the state, changes it, appends durable
events with the next `seq` and, when work must follow, writes it to the outbox. The
caller publishes the returned events and outbox rows after the commit. Applying the
same worker result twice changes nothing the second time, so redelivery is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.common import contracts as c
from services.common import safety
from services.common.topology import Topology
from services.gateway.store.models import (
    COUNTERS,
    Base,
    Event,
    Outbox,
    Page,
    Story,
    UsageDaily,
    UsageUpstreamDaily,
    utcnow,
)

# A page's events that say whether its writer waits (see Store._last_wait).
WAIT_EVENTS = ("page.waiting", "page.resumed", "page.started")
WAIT_FIELDS = ("reason", "tries", "retry_in", "retry_at")


class StoreError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    status = 404
    code = "not_found"


class Forbidden(StoreError):
    status = 403
    code = "forbidden"


class Invalid(StoreError):
    status = 422
    code = "invalid_input"


class Unsuitable(StoreError):
    """Refused with a kind sentence that suggests another idea, never a bare error."""

    status = 422
    code = "unsuitable_idea"


class Conflict(StoreError):
    status = 409
    code = "conflict"


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


class Store:
    def __init__(self, url: str, *, topology: Topology) -> None:
        self.engine = _make_engine(url)
        sqlite = url.startswith("sqlite")
        self.read_engine = _make_engine(url, writer=False) if sqlite else self.engine
        self.sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._writes = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: writers of this process queue here, in
        # order, instead of in SQLite's busy handler, which sleeps up to 100 ms a try.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if sqlite else None
        self.topo = topology

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

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

    # ------------------------------------------------------------------ helpers
    async def _lock_story(self, session: AsyncSession, story_id: str) -> Story:
        story = (
            await session.execute(select(Story).where(Story.id == story_id).with_for_update())
        ).scalar_one_or_none()
        if story is None:
            raise NotFound(f"No story with id {story_id!r}. Start a new story.")
        return story

    def _append(
        self, session: AsyncSession, story: Story, changes: Changes, type_: str, data: dict[str, Any]
    ) -> None:
        now = utcnow()
        story.last_seq += 1
        story.updated_at = now
        row = Event(story_id=story.id, seq=story.last_seq, type=type_, data=data, at=now)
        session.add(row)
        changes.events.append(c.LiveEvent(story_id=story.id, seq=story.last_seq, type=type_, data=_wire(row)))

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
        return c.StoryBrief(
            premise=story.premise,
            age=story.age,
            language=story.language,
            style=story.style,
            total_pages=story.total_pages,
            hero_name=story.hero_name,
            hero_picture=story.hero_path or "",
        )

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

    # ------------------------------------------------------------------ reader actions
    async def create_story(
        self,
        *,
        premise: str,
        age: int,
        language: str,
        style: str,
        total_pages: int,
        story_id: str | None = None,
        hero_name: str | None = None,
        hero_path: str | None = None,
    ) -> tuple[str, str, Changes]:
        story_id = story_id or uuid.uuid4().hex
        token = secrets.token_urlsafe(32)
        changes = Changes()
        async with self._tx() as session:
            story = Story(
                id=story_id,
                token_hash=hash_token(token),
                premise=premise,
                age=age,
                language=language,
                style=style,
                total_pages=total_pages,
                last_seq=0,
                status="in_progress",
                hero_name=hero_name,
                hero_path=hero_path,
            )
            session.add(story)
            await session.flush()  # the story row first: pages reference it
            session.add(Page(story_id=story_id, index=0, status="writing"))
            await session.flush()
            self._append(session, story, changes, "page.started", {"page": 0})
            task = c.OutlineTask(story_id=story_id, brief=self._brief(story))
            self._send(session, changes, story_id, self.topo.llm_key, task)
            await self._add_daily(session, stories=1)
        return story_id, token, changes

    async def authorize(self, story_id: str, token: str | None) -> None:
        async with self.sessions() as session:
            story = await session.get(Story, story_id)
        if story is None:
            raise NotFound(f"No story with id {story_id!r}. Start a new story.")
        if not token or not hmac.compare_digest(story.token_hash, hash_token(token)):
            raise Forbidden("This story belongs to another reader: the token does not match.")

    async def read_story(self, story_id: str) -> dict[str, Any]:
        async with self.sessions() as session:
            story = await session.get(Story, story_id)
            if story is None:
                raise NotFound(f"No story with id {story_id!r}. Start a new story.")
            pages = await self._pages(session, story_id)
            waiting: dict[int, dict[str, Any]] = {}
            for p in pages:
                if p.status == "writing":
                    last = await self._last_wait(session, story_id, p.index)
                    if last is not None and last.type == "page.waiting":
                        waiting[p.index] = {k: last.data.get(k) for k in WAIT_FIELDS}
        return {
            "story_id": story.id,
            "title": story.title,
            "status": story.status,
            "premise": story.premise,
            "age": story.age,
            "language": story.language,
            "style": story.style,
            "total_pages": story.total_pages,
            "created_at": _iso(story.created_at),
            "last_seq": story.last_seq,
            "usage": {n: getattr(story, n) for n in COUNTERS},
            "character_sheet": {
                "status": story.sheet_status,
                "url": media_url(story.sheet_path) if story.sheet_path else None,
            },
            "pages": [_page_view(p, waiting.get(p.index)) for p in pages],
        }

    async def events_after(self, story_id: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Event)
                .where(Event.story_id == story_id, Event.seq > after)
                .order_by(Event.seq)
                .limit(limit)
            )
            return [{"type": r.type, "seq": r.seq, **_wire(r)} for r in rows.scalars()]

    async def choose(self, story_id: str, *, page: int, choice: int | None, action: str | None) -> Changes:
        changes = Changes()
        async with self._tx() as session:
            story = await self._lock_story(session, story_id)
            pages = await self._pages(session, story_id)
            if story.status != "in_progress":
                raise Conflict(f"The story is {story.status}; no more choices can be made.")
            latest = pages[-1]
            if page != latest.index:
                raise Conflict(
                    f"Page {page} is not the latest page ({latest.index}); choose on the latest page."
                )
            if latest.status != "done":
                raise Conflict(f"Page {page} is still being written; wait for its choices.")
            if latest.chosen_choice is not None or latest.chosen_action is not None:
                raise Conflict(f"A choice was already made for page {page}.")
            if not latest.choices:
                raise Conflict(f"Page {page} is the ending; it has no choices.")
            if choice is not None:
                if not 0 <= choice < len(latest.choices):
                    raise Invalid(f"choice must be between 0 and {len(latest.choices) - 1} for page {page}.")
                latest.chosen_choice = choice
                direction = latest.choices[choice]
            else:
                assert action is not None
                if not safety.check(action, age=story.age).ok:
                    raise Unsuitable(safety.kind_refusal(story.language, choices=latest.choices))
                latest.chosen_action = action
                direction = action
            self._append(
                session,
                story,
                changes,
                "page.chosen",
                {"page": page, "choice": choice, "action": action},
            )
            nxt = Page(
                story_id=story_id,
                index=page + 1,
                status="writing",
                direction=direction,
                direction_typed=action is not None,
            )
            session.add(nxt)
            await session.flush()
            self._append(session, story, changes, "page.started", {"page": nxt.index})
            task = self._page_task(story, [*pages, nxt], nxt)
            self._send(session, changes, story_id, self.topo.llm_key, task)
        return changes

    async def retry_page(self, story_id: str, *, page: int) -> Changes:
        changes = Changes()
        async with self._tx() as session:
            story = await self._lock_story(session, story_id)
            pages = await self._pages(session, story_id)
            target = next((p for p in pages if p.index == page), None)
            if target is None:
                raise NotFound(f"Story {story_id} has no page {page}.")
            if target.status != "failed":
                raise Conflict(f"Page {page} has not failed; nothing to write again.")
            target.status = "writing"
            target.error = None
            target.text = ""
            target.text_attempt += 1
            if target.image_status != "ready":
                target.image_attempt += 1
                target.image_status = "pending"
                target.image_error = None
                target.image_started_at = None
            story.status = "in_progress"
            self._append(session, story, changes, "page.started", {"page": page})
            if story.outline is None:
                task: Any = c.OutlineTask(
                    story_id=story_id, brief=self._brief(story), attempt=target.text_attempt
                )
            else:
                task = self._page_task(story, pages, target)
            self._send(session, changes, story_id, self.topo.llm_key, task)
        return changes

    async def redraw(self, story_id: str, *, page: int) -> Changes:
        changes = Changes()
        async with self._tx() as session:
            story = await self._lock_story(session, story_id)
            target = await session.get(Page, (story_id, page), with_for_update=True)
            if target is None:
                raise NotFound(f"Story {story_id} has no page {page}.")
            if not target.image_prompt:
                raise Conflict(
                    f"Page {page} has no picture description yet; wait for the page to be written."
                )
            if target.image_status == "pending":
                raise Conflict(f"The picture of page {page} is being drawn already.")
            target.image_attempt += 1
            target.image_status = "pending"
            target.image_error = None
            target.image_started_at = utcnow()
            self._append(
                session,
                story,
                changes,
                "page.image.started",
                {"page": page, "attempt": target.image_attempt},
            )
            task = c.ImageTask(
                story_id=story_id,
                page=page,
                prompt=target.image_prompt,
                attempt=target.image_attempt,
                use_sheet=True,
                sheet=_sheet_key(story),
                request=uuid.uuid4().hex,
            )
            self._send(session, changes, story_id, self.topo.image_key, task)
        return changes

    async def redraw_sheet(self, story_id: str) -> Changes:
        """Draw the character sheet again after it failed: pages drawn from now on use it."""
        changes = Changes()
        async with self._tx() as session:
            story = await self._lock_story(session, story_id)
            if story.outline is None:
                raise Conflict("The characters are not written yet; their picture follows them.")
            if story.sheet_status == "pending":
                raise Conflict("The characters are being drawn already.")
            if story.sheet_status == "ready":
                raise Conflict("The characters are drawn already.")
            outline = c.Outline.model_validate(story.outline)
            story.sheet_status, story.sheet_path = "pending", None
            self._append(session, story, changes, "story.sheet.started", {})
            task = c.ImageTask(
                story_id=story_id,
                page=c.SHEET_PAGE,
                prompt=c.sheet_prompt(outline.characters, outline.style),
                ratio="16:9",
                kind="sheet",
                sheet=_sheet_key(story),
                request=uuid.uuid4().hex,
                hero=story.hero_path or "",
            )
            self._send(session, changes, story_id, self.topo.image_key, task)
        return changes

    # ------------------------------------------------------------------ worker results
    async def apply(self, result: Any) -> Changes:
        """Apply a worker's result once; a duplicate or stale result changes nothing."""
        changes = Changes()
        async with self._tx() as session:
            story = await self._lock_story(session, result.story_id)
            match result:
                case c.UsageReport():
                    amounts = {name: int(getattr(result, name)) for name in COUNTERS}
                    for name, value in amounts.items():
                        setattr(story, name, getattr(story, name) + value)
                    await self._add_daily(session, **amounts)
                    if result.llm_calls:
                        await self._add_upstream(session, "moonshot", calls=result.llm_calls)
                    if result.image_calls or result.pictures:
                        upstream = result.provider or "jimeng"  # reports from before providers: jimeng
                        await self._add_upstream(
                            session, upstream, calls=result.image_calls, pictures=result.pictures
                        )
                case c.OutlineReady():
                    await self._outline_ready(session, story, result, changes)
                case c.ImageRequested():
                    await self._image_requested(session, story, result, changes)
                case c.PageTextDone():
                    await self._text_done(session, story, result, changes)
                case c.PageFailed():
                    await self._page_failed(session, story, result, changes)
                case c.PageWaiting():
                    await self._page_waiting(session, story, result, changes)
                case c.PageResumed():
                    await self._page_resumed(session, story, result, changes)
                case c.ImageReady():
                    await self._image_ready(session, story, result, changes)
                case c.ImageFailed():
                    await self._image_failed(session, story, result, changes)
            changes.last_seq = story.last_seq
        return changes

    async def _outline_ready(
        self, session: AsyncSession, story: Story, r: c.OutlineReady, changes: Changes
    ) -> None:
        if story.outline is not None:
            return
        first = await session.get(Page, (story.id, 0))
        if first is None or first.status != "writing":
            return
        story.outline = r.outline.model_dump(mode="json")
        story.title = r.outline.title
        if story.sheet_path and not _same_sheet(story.sheet_path, _sheet_key(story)):
            # A sheet drawn for an outline attempt that was lost: this outline's own is coming.
            story.sheet_status, story.sheet_path = "pending", None
        self._append(session, story, changes, "story.outlined", {"title": r.outline.title})
        task = self._page_task(story, [first], first)
        self._send(session, changes, story.id, self.topo.llm_key, task)

    async def _image_requested(
        self, session: AsyncSession, story: Story, r: c.ImageRequested, changes: Changes
    ) -> None:
        page = await session.get(Page, (story.id, r.page))
        if page is None or r.attempt != page.image_attempt:
            return
        if page.image_prompt == r.prompt and page.image_started_at is not None:
            return
        page.image_prompt = r.prompt
        if page.image_status == "pending" and page.image_started_at is None:
            page.image_started_at = utcnow()
            self._append(
                session,
                story,
                changes,
                "page.image.started",
                {"page": r.page, "attempt": r.attempt},
            )

    async def _text_done(
        self, session: AsyncSession, story: Story, r: c.PageTextDone, changes: Changes
    ) -> None:
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
            return
        last = r.page >= story.total_pages - 1
        page.text = r.text
        page.choices = [] if last else list(r.choices)
        page.status = "done"
        page.image_prompt = page.image_prompt or r.image_prompt
        done: dict[str, Any] = {"page": r.page, "text": page.text, "choices": page.choices}
        if r.note:
            done["note"] = r.note
        if r.alt:
            page.image_alt = r.alt
            done["alt"] = r.alt
        self._append(session, story, changes, "page.text.done", done)
        if last:
            story.status = "ended"
            self._append(session, story, changes, "story.ended", {})

    async def _page_failed(
        self, session: AsyncSession, story: Story, r: c.PageFailed, changes: Changes
    ) -> None:
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
            return
        page.status = "failed"
        page.error = r.error.model_dump()
        story.status = "failed"
        if page.image_status == "pending" and page.image_started_at is None:
            # Its picture was never asked for and never will be under this attempt: it is
            # not waiting for anything (writing the page again asks for one).
            page.image_status = "none"
        self._append(session, story, changes, "page.failed", {"page": r.page, "error": page.error})

    async def _last_wait(self, session: AsyncSession, story_id: str, page: int) -> Event | None:
        """The page's latest page.waiting, page.resumed or page.started: whether the page
        waits now is read from its own history, so nothing else has to be kept in step."""
        rows = await session.execute(
            select(Event)
            .where(Event.story_id == story_id, Event.type.in_(WAIT_EVENTS))
            .order_by(Event.seq.desc())
            .limit(50)
        )
        return next((e for e in rows.scalars() if e.data.get("page") == page), None)

    async def _page_waiting(
        self, session: AsyncSession, story: Story, r: c.PageWaiting, changes: Changes
    ) -> None:
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
            return
        last = await self._last_wait(session, story.id, r.page)
        if last is not None and last.type != "page.started" and int(last.data.get("tries", 0)) >= r.tries:
            return  # a duplicate, or news older than what the reader has
        retry_at = datetime.fromtimestamp(r.retry_at, UTC).isoformat()
        data = {
            "page": r.page,
            "tries": r.tries,
            "reason": r.reason,
            "retry_in": r.retry_in,
            "retry_at": retry_at,
        }
        self._append(session, story, changes, "page.waiting", data)

    async def _page_resumed(
        self, session: AsyncSession, story: Story, r: c.PageResumed, changes: Changes
    ) -> None:
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
            return
        last = await self._last_wait(session, story.id, r.page)
        if last is None or last.type != "page.waiting" or int(last.data.get("tries", 0)) >= r.tries:
            return
        self._append(session, story, changes, "page.resumed", {"page": r.page, "tries": r.tries})

    async def _image_ready(
        self, session: AsyncSession, story: Story, r: c.ImageReady, changes: Changes
    ) -> None:
        if r.page == c.SHEET_PAGE:
            if _stale_sheet(story, r.sheet):
                return
            if story.sheet_status != "ready" or story.outline is None:
                # Before the outline is stored the latest sheet is kept (and checked then).
                story.sheet_status, story.sheet_path = "ready", r.media_path
                self._append(session, story, changes, "story.sheet.done", {"url": media_url(r.media_path)})
            return
        page = await session.get(Page, (story.id, r.page))
        if page is None or r.attempt != page.image_attempt or page.image_status != "pending":
            return
        page.image_status = "ready"
        page.image_path = r.media_path
        page.image_error = None
        page.image_reference, page.image_note = r.reference, r.note
        self._append(
            session,
            story,
            changes,
            "page.image.done",
            {"page": r.page, "url": media_url(r.media_path), "reference": r.reference, "note": r.note},
        )

    async def _image_failed(
        self, session: AsyncSession, story: Story, r: c.ImageFailed, changes: Changes
    ) -> None:
        if r.page == c.SHEET_PAGE:
            if story.sheet_status == "pending" and not _stale_sheet(story, r.sheet):
                story.sheet_status = "failed"
                self._append(session, story, changes, "story.sheet.failed", {"error": r.error.model_dump()})
            return
        page = await session.get(Page, (story.id, r.page))
        if page is None or r.attempt != page.image_attempt or page.image_status != "pending":
            return
        page.image_status = "failed"
        page.image_error = r.error.model_dump()
        self._append(
            session,
            story,
            changes,
            "page.image.failed",
            {"page": r.page, "error": page.image_error},
        )

    async def _add_daily(self, session: AsyncSession, **amounts: int) -> None:
        """Add to today's totals in one statement (an upsert): no read, and the day's row
        is locked only from here to the commit, so the many usage reports of a busy day do
        not queue behind each other's whole transactions."""
        day = utcnow().strftime("%Y-%m-%d")
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        row = dict.fromkeys(("stories", *COUNTERS), 0) | amounts
        stmt = insert(UsageDaily).values(day=day, **row)
        table = UsageDaily.__table__.c
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.day],
            set_={name: table[name] + stmt.excluded[name] for name in amounts},
        )
        await session.execute(stmt)

    async def _add_upstream(
        self, session: AsyncSession, upstream: str, *, calls: int, pictures: int = 0
    ) -> None:
        day = utcnow().strftime("%Y-%m-%d")
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(UsageUpstreamDaily).values(day=day, upstream=upstream, calls=calls, pictures=pictures)
        table = UsageUpstreamDaily.__table__.c
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.day, table.upstream],
            set_={
                "calls": table.calls + stmt.excluded.calls,
                "pictures": table.pictures + stmt.excluded.pictures,
            },
        )
        await session.execute(stmt)

    async def usage(self, *, days: int) -> dict[str, Any]:
        async with self.sessions() as session:
            rows = await session.execute(select(UsageDaily).order_by(UsageDaily.day.desc()).limit(days))
            per_day = [
                {"day": r.day, "stories": r.stories, **{n: getattr(r, n) for n in COUNTERS}}
                for r in rows.scalars()
            ]
            shown = [d["day"] for d in per_day]
            found = await session.execute(select(UsageUpstreamDaily).where(UsageUpstreamDaily.day.in_(shown)))
            by_upstream: dict[str, dict[str, int]] = {}
            for r in found.scalars():
                total = by_upstream.setdefault(r.upstream, {"calls": 0, "pictures": 0})
                total["calls"] += r.calls
                total["pictures"] += r.pictures
                day = next(d for d in per_day if d["day"] == r.day)
                day.setdefault("upstreams", {})[r.upstream] = {"calls": r.calls, "pictures": r.pictures}
        totals = {n: sum(int(d[n]) for d in per_day) for n in ("stories", *COUNTERS)}
        return {"days": per_day, "totals": totals, "upstreams": by_upstream}

    # ------------------------------------------------------------------ library
    async def summaries(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The stories of this device: only those whose token matches, never a word about others."""
        wanted = {sid: token for sid, token in pairs}
        async with self.sessions() as session:
            rows = await session.execute(select(Story).where(Story.id.in_(list(wanted))))
            found = [s for s in rows.scalars() if hmac.compare_digest(s.token_hash, hash_token(wanted[s.id]))]
            out = []
            for story in sorted(found, key=lambda s: s.created_at, reverse=True):
                pages = await self._pages(session, story.id)
                cover = next(
                    (p.image_path for p in pages if p.image_status == "ready" and p.image_path), None
                )
                out.append(
                    {
                        "story_id": story.id,
                        "title": story.title,
                        "status": story.status,
                        "language": story.language,
                        "created_at": _iso(story.created_at),
                        "pages": len([p for p in pages if p.status == "done"]),
                        "cover_url": media_url(cover) if cover else None,
                        # The story waits for the reader, not for the writer: say so.
                        "awaiting_choice": _awaits_choice(story, pages),
                    }
                )
        return out

    async def share(self, story_id: str) -> str:
        async with self._tx() as session:
            story = await self._lock_story(session, story_id)
            if story.status != "ended":
                raise Conflict("Only a finished story can be shared. Finish it first.")
            if story.share_id is None:
                story.share_id = secrets.token_urlsafe(16)
            return story.share_id

    async def shared(self, share_id: str) -> dict[str, Any]:
        """A shared story: the finished pages and pictures, and nothing else."""
        async with self.sessions() as session:
            story = (
                await session.execute(select(Story).where(Story.share_id == share_id))
            ).scalar_one_or_none()
            if story is None or not share_id:
                raise NotFound("This link does not lead to a story. Ask for a new link.")
            story_id = story.id
        full = await self.read_story(story_id)
        keep = ("title", "status", "language", "total_pages", "character_sheet")
        shared = {k: full[k] for k in keep}
        shared["pages"] = [
            {
                "index": p["index"],
                "status": p["status"],
                "text": p["text"],
                "image": {k: p["image"][k] for k in ("status", "url")},
            }
            for p in full["pages"]
        ]
        return shared

    async def is_current_picture(self, story_id: str, media_path: str) -> bool:
        """Whether a page or the character sheet of this story shows this picture now.

        Only these are served: a picture replaced by a redraw was judged not good
        enough, and its old link must stop working."""
        async with self.sessions() as session:
            sheet = await session.execute(
                select(Story.id).where(Story.id == story_id, Story.sheet_path == media_path)
            )
            if sheet.first() is not None:
                return True
            page = await session.execute(
                select(Page.index).where(Page.story_id == story_id, Page.image_path == media_path).limit(1)
            )
            return page.first() is not None

    # ------------------------------------------------------------------ outbox
    async def pending_outbox(self, *, older_than: timedelta, limit: int = 100) -> list[Outbox]:
        cutoff = utcnow() - older_than
        async with self.sessions() as session:
            rows = await session.execute(
                select(Outbox)
                .where(Outbox.published_at.is_(None), Outbox.created_at < cutoff)
                .order_by(Outbox.id)
                .limit(limit)
            )
            return list(rows.scalars())

    async def mark_published(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._tx() as session:
            await session.execute(
                update(Outbox).where(Outbox.id.in_(list(ids))).values(published_at=utcnow())
            )


def media_url(media_path: str) -> str:
    return f"/media/{media_path}"


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


def _wire(row: Event) -> dict[str, Any]:
    return {**row.data, "at": _iso(row.at or utcnow())}


def _awaits_choice(story: Story, pages: Sequence[Page]) -> bool:
    latest = max(pages, key=lambda p: p.index, default=None)
    return bool(
        story.status == "in_progress"
        and latest is not None
        and latest.status == "done"
        and latest.choices
        and latest.chosen_choice is None
        and latest.chosen_action is None
    )


def _page_view(p: Page, waiting: dict[str, Any] | None = None) -> dict[str, Any]:
    chosen = None
    if p.chosen_choice is not None or p.chosen_action is not None:
        chosen = {"choice": p.chosen_choice, "action": p.chosen_action}
    return {
        "index": p.index,
        "status": p.status,
        "text": p.text,
        "choices": list(p.choices or []),
        "chosen": chosen,
        "alt": p.image_alt,
        "error": p.error,
        # The writer waits out a Moonshot rate limit or outage: why, and until when.
        "waiting": waiting,
        "image": {
            "status": p.image_status,
            "url": media_url(p.image_path) if p.image_path and p.image_status == "ready" else None,
            "error": p.image_error,
            "started_at": _iso(p.image_started_at),
            "reference": p.image_reference,
            "note": p.image_note,
        },
    }


def _sheet_key(story: Story) -> str:
    """The key of the character sheet the story's outline asks for ("" before the outline)."""
    if story.outline is None:
        return ""
    outline = c.Outline.model_validate(story.outline)
    return c.sheet_key(outline.characters, outline.style)


def _same_sheet(path: str, key: str) -> bool:
    """Is the stored sheet the one `key` names? (One drawn before sheets had keys is kept.)"""
    return not key or PurePosixPath(path).stem in (c.sheet_name(key), c.sheet_name(""))


def _stale_sheet(story: Story, key: str) -> bool:
    """A sheet result for other looks than the stored outline's (from a lost attempt)."""
    return bool(key) and story.outline is not None and key != _sheet_key(story)
