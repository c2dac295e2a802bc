"""What the workers report, applied once: a duplicate or stale result changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import contracts as c
from services.common import events as ev
from services.common.media import media_url, same_sheet
from services.gateway.store.base import Changes, Database, _sheet_key, _stale_sheet
from services.gateway.store.errors import NotFound
from services.gateway.store.models import COUNTERS, Page, Story, utcnow
from services.gateway.store.usage import add_daily, add_upstream


class Tally:
    """The usage counters a batch adds up, written once at its end and always in the same
    order (day, then upstreams by name): two replicas' batches never wait for each
    other's usage rows in opposite orders."""

    def __init__(self) -> None:
        self.daily: dict[str, int] = {}
        self.upstreams: dict[str, tuple[int, int]] = {}

    def add(self, r: c.UsageReport) -> None:
        for name in COUNTERS:
            self.daily[name] = self.daily.get(name, 0) + int(getattr(r, name))
        if r.llm_calls:
            self._upstream("moonshot", r.llm_calls, 0)
        if r.image_calls or r.pictures:
            self._upstream(r.provider or "jimeng", r.image_calls, r.pictures)  # older reports: jimeng

    def _upstream(self, name: str, calls: int, pictures: int) -> None:
        known = self.upstreams.get(name, (0, 0))
        self.upstreams[name] = (known[0] + calls, known[1] + pictures)

    async def write(self, session: AsyncSession) -> None:
        if self.daily:
            await add_daily(session, **self.daily)
        for name, (calls, pictures) in sorted(self.upstreams.items()):
            await add_upstream(session, name, calls=calls, pictures=pictures)


class Results(Database):
    async def apply(self, result: Any) -> Changes:
        """Apply a worker's result once; a duplicate or stale result changes nothing."""
        (changes,) = await self.apply_many([result])
        if changes is None:
            raise NotFound(f"No story with id {result.story_id!r}. Start a new story.")
        return changes

    async def apply_many(self, results: Sequence[Any]) -> list[Changes | None]:
        """Apply results in their order in one transaction, one Changes each (None: no
        such story). Each story's change still commits with its events and outbox rows;
        the batch only shares the commit, the round trips and the write lock."""
        out: list[Changes | None] = []
        async with self._tx() as session:
            # `_held`: the batch's pages, kept alive in the identity map until the commit.
            stories, _held = await self._lock_stories(session, {r.story_id for r in results})
            tally = Tally()
            for result in results:
                story = stories.get(result.story_id)
                if story is None:
                    out.append(None)
                    continue
                changes = Changes()
                if isinstance(result, c.UsageReport):
                    for name in COUNTERS:
                        setattr(story, name, getattr(story, name) + int(getattr(result, name)))
                    tally.add(result)
                else:
                    await self._apply_one(session, story, result, changes)
                changes.last_seq = story.last_seq
                out.append(changes)
            await tally.write(session)
        return out

    async def _lock_stories(
        self, session: AsyncSession, ids: set[str]
    ) -> tuple[dict[str, Story], list[Page]]:
        """Lock the batch's stories in one round trip, in id order (two batches that
        share stories never deadlock), and load their pages with them.

        The pages are returned for the caller to hold while it applies the batch: the
        session's identity map, where each result's session.get looks first, keeps only
        weak references to unchanged objects. Pages nobody held were gone by the time
        they were asked for, and each story's session.get queried again and flushed the
        batch so far (a batch of 24 results for 8 stories was 34 round trips, now 10)."""
        found = await session.execute(
            select(Story).where(Story.id.in_(sorted(ids))).order_by(Story.id).with_for_update()
        )
        stories = {s.id: s for s in found.scalars()}
        pages: list[Page] = []
        if stories:
            found_pages = await session.execute(select(Page).where(Page.story_id.in_(sorted(stories))))
            pages = list(found_pages.scalars())
        return stories, pages

    async def _apply_one(self, session: AsyncSession, story: Story, result: Any, changes: Changes) -> None:
        appliers: dict[type, Callable[..., Awaitable[None]]] = {
            c.OutlineReady: self._outline_ready,
            c.ImageRequested: self._image_requested,
            c.PageTextDone: self._text_done,
            c.PageFailed: self._page_failed,
            c.PageWaiting: self._page_waiting,
            c.PageResumed: self._page_resumed,
            c.ImageReady: self._image_ready,
            c.ImageFailed: self._image_failed,
        }
        apply = appliers.get(type(result))
        if apply is not None:
            await apply(session, story, result, changes)

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
        if story.sheet_path and not same_sheet(story.sheet_path, _sheet_key(story)):
            # A sheet drawn for an outline attempt that was lost: this outline's own is coming.
            story.sheet_status, story.sheet_path = "pending", None
        self._append(session, story, changes, ev.StoryOutlined(title=r.outline.title))
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
            self._append(session, story, changes, ev.PageImageStarted(page=r.page, attempt=r.attempt))

    async def _text_done(
        self, session: AsyncSession, story: Story, r: c.PageTextDone, changes: Changes
    ) -> None:
        if (page := await _writing(session, story, r)) is None:
            return
        last = r.page >= story.total_pages - 1
        page.text = r.text
        page.choices = [] if last else list(r.choices)
        page.status = "done"
        page.image_prompt = page.image_prompt or r.image_prompt
        page.image_alt = r.alt or None
        done = ev.PageTextDone(
            page=r.page, text=page.text, choices=page.choices, note=r.note or None, alt=page.image_alt
        )
        self._append(session, story, changes, done)
        if last:
            story.status = "ended"
            self._append(session, story, changes, ev.StoryEnded())

    async def _page_failed(
        self, session: AsyncSession, story: Story, r: c.PageFailed, changes: Changes
    ) -> None:
        if (page := await _writing(session, story, r)) is None:
            return
        page.status = "failed"
        page.error = r.error.model_dump()
        story.status = "failed"
        if page.image_status == "pending" and page.image_started_at is None:
            # Its picture was never asked for and never will be under this attempt: it is
            # not waiting for anything (writing the page again asks for one).
            page.image_status = "none"
        self._append(session, story, changes, ev.PageFailed(page=r.page, error=r.error))

    async def _page_waiting(
        self, session: AsyncSession, story: Story, r: c.PageWaiting, changes: Changes
    ) -> None:
        if await _writing(session, story, r) is None:
            return
        last = await self._last_wait(session, story.id, r.page)
        if (
            last is not None
            and last.type != ev.PageStarted.type
            and int(last.data.get("tries", 0)) >= r.tries
        ):
            return  # a duplicate, or news older than what the reader has
        retry_at = datetime.fromtimestamp(r.retry_at, UTC).isoformat()
        waiting = ev.PageWaiting(
            page=r.page, tries=r.tries, reason=r.reason, retry_in=r.retry_in, retry_at=retry_at
        )
        self._append(session, story, changes, waiting)

    async def _page_resumed(
        self, session: AsyncSession, story: Story, r: c.PageResumed, changes: Changes
    ) -> None:
        if await _writing(session, story, r) is None:
            return
        last = await self._last_wait(session, story.id, r.page)
        if last is None or last.type != ev.PageWaiting.type or int(last.data.get("tries", 0)) >= r.tries:
            return
        self._append(session, story, changes, ev.PageResumed(page=r.page, tries=r.tries))

    async def _image_ready(
        self, session: AsyncSession, story: Story, r: c.ImageReady, changes: Changes
    ) -> None:
        if r.page == c.SHEET_PAGE:
            if _stale_sheet(story, r.sheet):
                return
            if story.sheet_status != "ready" or story.outline is None:
                # Before the outline is stored the latest sheet is kept (and checked then).
                story.sheet_status, story.sheet_path = "ready", r.media_path
                self._append(session, story, changes, ev.StorySheetDone(url=media_url(r.media_path)))
            return
        if (page := await _drawing(session, story, r)) is None:
            return
        page.image_status = "ready"
        page.image_path = r.media_path
        page.image_error = None
        page.image_reference, page.image_note = r.reference, r.note
        done = ev.PageImageDone(page=r.page, url=media_url(r.media_path), reference=r.reference, note=r.note)
        self._append(session, story, changes, done)

    async def _image_failed(
        self, session: AsyncSession, story: Story, r: c.ImageFailed, changes: Changes
    ) -> None:
        if r.page == c.SHEET_PAGE:
            if story.sheet_status == "pending" and not _stale_sheet(story, r.sheet):
                story.sheet_status = "failed"
                self._append(session, story, changes, ev.StorySheetFailed(error=r.error))
            return
        if (page := await _drawing(session, story, r)) is None:
            return
        page.image_status = "failed"
        page.image_error = r.error.model_dump()
        self._append(session, story, changes, ev.PageImageFailed(page=r.page, error=r.error))


async def _writing(
    session: AsyncSession, story: Story, r: c.PageTextDone | c.PageFailed | c.PageWaiting | c.PageResumed
) -> Page | None:
    """The page a text result speaks of, if it is still being written under that result's
    attempt; None for a result that is stale (an older attempt) or a duplicate."""
    page = await session.get(Page, (story.id, r.page))
    if page is None or page.status != "writing" or r.attempt != page.text_attempt:
        return None
    return page


async def _drawing(session: AsyncSession, story: Story, r: c.ImageReady | c.ImageFailed) -> Page | None:
    """The page a picture result speaks of, if its picture is still awaited under that
    result's attempt; None for a result that is stale or a duplicate."""
    page = await session.get(Page, (story.id, r.page))
    if page is None or r.attempt != page.image_attempt or page.image_status != "pending":
        return None
    return page
