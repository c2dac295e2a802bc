"""Reading stories: the reader's view, the events to replay, the library and the shared form."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from services.common import events as ev
from services.common.media import media_url
from services.gateway.store.base import Database, _iso, _wire, hash_token
from services.gateway.store.errors import Conflict, NotFound
from services.gateway.store.models import Event, Page, Story
from services.gateway.store.views import (
    Chosen,
    Cost,
    PageView,
    SharedStory,
    SheetView,
    StoryView,
    Summary,
    Waiting,
)


class Reads(Database):
    async def read_story(self, story_id: str) -> StoryView:
        async with self.sessions() as session:
            story = await session.get(Story, story_id)
            if story is None:
                raise NotFound(f"No story with id {story_id!r}. Start a new story.")
            pages = await self._pages(session, story_id)
            waiting: dict[int, Waiting] = {}
            for p in pages:
                if p.status == "writing":
                    last = await self._last_wait(session, story_id, p.index)
                    if last is not None and last.type == ev.PageWaiting.type:
                        waiting[p.index] = Waiting.model_validate(last.data)
        return StoryView(
            story_id=story.id,
            title=story.title,
            status=story.status,
            premise=story.premise,
            age=story.age,
            language=story.language,
            style=story.style,
            total_pages=story.total_pages,
            created_at=_iso(story.created_at),
            last_seq=story.last_seq,
            usage=Cost.model_validate(story, from_attributes=True),
            character_sheet=SheetView(
                status=story.sheet_status, url=media_url(story.sheet_path) if story.sheet_path else None
            ),
            pages=[_page_view(p, waiting.get(p.index)) for p in pages],
        )

    async def events_after(self, story_id: str, after: int, limit: int = 500) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Event)
                .where(Event.story_id == story_id, Event.seq > after)
                .order_by(Event.seq)
                .limit(limit)
            )
            return [{"type": r.type, "seq": r.seq, **_wire(r.data, r.at)} for r in rows.scalars()]

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

    async def summaries(self, pairs: Sequence[tuple[str, str]]) -> list[Summary]:
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
                    Summary(
                        story_id=story.id,
                        title=story.title,
                        status=story.status,
                        language=story.language,
                        created_at=_iso(story.created_at),
                        pages=len([p for p in pages if p.status == "done"]),
                        cover_url=media_url(cover) if cover else None,
                        awaiting_choice=_awaits_choice(story, pages),
                    )
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

    async def shared(self, share_id: str) -> SharedStory:
        """A shared story: the finished pages and pictures, and nothing else."""
        async with self.sessions() as session:
            story = (
                await session.execute(select(Story).where(Story.share_id == share_id))
            ).scalar_one_or_none()
            if story is None or not share_id:
                raise NotFound("This link does not lead to a story. Ask for a new link.")
            story_id = story.id
        return SharedStory.of(await self.read_story(story_id))


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


def _page_view(p: Page, waiting: Waiting | None = None) -> PageView:
    chosen = None
    if p.chosen_choice is not None or p.chosen_action is not None:
        chosen = Chosen(choice=p.chosen_choice, action=p.chosen_action)
    return PageView.model_validate(
        {
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
    )
