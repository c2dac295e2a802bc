"""What the workers report, applied once: a duplicate or stale result changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import contracts as c
from services.common import events as ev
from services.common.media import media_url, same_sheet
from services.gateway.store.base import Changes, Database, _sheet_key, _stale_sheet
from services.gateway.store.models import COUNTERS, Page, Story, utcnow
from services.gateway.store.usage import add_daily, add_upstream


class Results(Database):
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
                    await add_daily(session, **amounts)
                    if result.llm_calls:
                        await add_upstream(session, "moonshot", calls=result.llm_calls)
                    if result.image_calls or result.pictures:
                        upstream = result.provider or "jimeng"  # reports from before providers: jimeng
                        await add_upstream(
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
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
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
        self._append(session, story, changes, ev.PageFailed(page=r.page, error=r.error))

    async def _page_waiting(
        self, session: AsyncSession, story: Story, r: c.PageWaiting, changes: Changes
    ) -> None:
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
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
        page = await session.get(Page, (story.id, r.page))
        if page is None or page.status != "writing" or r.attempt != page.text_attempt:
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
        page = await session.get(Page, (story.id, r.page))
        if page is None or r.attempt != page.image_attempt or page.image_status != "pending":
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
        page = await session.get(Page, (story.id, r.page))
        if page is None or r.attempt != page.image_attempt or page.image_status != "pending":
            return
        page.image_status = "failed"
        page.image_error = r.error.model_dump()
        self._append(session, story, changes, ev.PageImageFailed(page=r.page, error=r.error))
