"""What a reader asks of a story: start it, choose, write a page again, redraw."""

from __future__ import annotations

import hmac
import secrets
import uuid
from typing import Any

from services.common import contracts as c
from services.common import events as ev
from services.common import safety
from services.gateway.store.base import Changes, Database, _sheet_key, hash_token
from services.gateway.store.errors import Conflict, Forbidden, Invalid, NotFound, Unsuitable
from services.gateway.store.models import Page, Story, utcnow
from services.gateway.store.usage import add_daily


class Commands(Database):
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
            self._append(session, story, changes, ev.PageStarted(page=0))
            task = c.OutlineTask(story_id=story_id, brief=self._brief(story))
            self._send(session, changes, story_id, self.topo.llm_key, task)
            await add_daily(session, stories=1)
        return story_id, token, changes

    async def authorize(self, story_id: str, token: str | None) -> None:
        async with self.sessions() as session:
            story = await session.get(Story, story_id)
        if story is None:
            raise NotFound(f"No story with id {story_id!r}. Start a new story.")
        if not token or not hmac.compare_digest(story.token_hash, hash_token(token)):
            raise Forbidden("This story belongs to another reader: the token does not match.")

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
            self._append(session, story, changes, ev.PageChosen(page=page, choice=choice, action=action))
            nxt = Page(
                story_id=story_id,
                index=page + 1,
                status="writing",
                direction=direction,
                direction_typed=action is not None,
            )
            session.add(nxt)
            await session.flush()
            self._append(session, story, changes, ev.PageStarted(page=nxt.index))
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
            self._append(session, story, changes, ev.PageStarted(page=page))
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
                session, story, changes, ev.PageImageStarted(page=page, attempt=target.image_attempt)
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
            self._append(session, story, changes, ev.StorySheetStarted())
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
