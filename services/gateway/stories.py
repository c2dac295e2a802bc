"""What a reader can do to a story, shared by the HTTP API and the WebSocket."""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
import uuid
from collections import OrderedDict, deque
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.common import safety
from services.common.contracts import MAX_ACTION, MAX_PREMISE
from services.common.mediastore import MediaStore
from services.gateway import hero
from services.gateway.bus import GatewayBus
from services.gateway.config import GatewaySettings
from services.gateway.store.errors import Invalid, TooMany, Unavailable, Unsuitable
from services.gateway.store.repo import Changes, Store

log = logging.getLogger(__name__)

Premise = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PREMISE)]
Action = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ACTION)]
Style = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
HeroName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30)]


def no_control_characters(value: str | None) -> str | None:
    if value is None:
        return None
    # Only C0/C1 control characters: format characters such as the zero-width joiner
    # are part of ordinary emoji and stay.
    bad = [ch for ch in value if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t"]
    if bad:
        raise ValueError(f"contains a control character (U+{ord(bad[0]):04X}); remove it")
    return value


def unstorable(value: Any) -> str | None:
    """What no database column takes: an unpaired surrogate (a JSON "\\ud800") or NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "contains a control character (U+0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "contains an unpaired surrogate (\\ud800-\\udfff)"
    return None


class NewStory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    premise: Premise = Field(description="what the story is about, 1-500 characters")
    age: StrictInt = Field(default=6, ge=3, le=12, description="the child's age, 3-12")
    language: Literal["zh", "en"] = "zh"
    style: Style | None = None
    hero_name: HeroName | None = Field(default=None, description="the hero's name, 1-30 characters")
    hero_picture: str | None = Field(
        default=None,
        description='a drawing or a photo of a toy as a "data:image/...;base64," URL (PNG, JPEG, WebP); '
        "the characters are drawn from it",
    )

    _clean = field_validator("premise", "style", "hero_name")(no_control_characters)


class Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: StrictInt = Field(ge=0)
    choice: StrictInt | None = Field(default=None, ge=0)
    action: Action | None = None

    _clean = field_validator("action")(no_control_characters)

    @model_validator(mode="after")
    def _one_of(self) -> Choice:
        if (self.choice is None) == (self.action is None):
            raise ValueError(
                'send either "choice" (the number of a choice) or "action" (your own idea), not both'
            )
        return self


class Busy(Unavailable):
    retry_after = 5


class Crowded(Busy):
    retry_after = 30


class RateLimited(TooMany):
    retry_after = 60


class PerClientLimit:
    """At most `per_minute` new stories per client address, in a sliding minute."""

    def __init__(self, per_minute: int, *, clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.clients = clients
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        stamps = self._seen.pop(client, None) or deque()
        while stamps and now - stamps[0] > 60:
            stamps.popleft()
        allowed = len(stamps) < self.per_minute
        if allowed:
            stamps.append(now)
        self._seen[client] = stamps
        while len(self._seen) > self.clients:  # bounded memory under many addresses
            self._seen.popitem(last=False)
        return allowed


class StoryService:
    def __init__(
        self, *, settings: GatewaySettings, store: Store, bus: GatewayBus, media: MediaStore
    ) -> None:
        self.settings = settings
        self.store = store
        self.media = media  # where the pictures are kept: the hero's too
        self.bus = bus
        self.limit = PerClientLimit(settings.create_per_minute)

    async def _require_broker(self) -> None:
        if not self.bus.connected():
            raise Busy(
                "The story machine cannot reach its message broker right now. "
                "Nothing was started; please try again in a few seconds."
            )

    async def _publish(self, changes: Changes) -> None:
        # The transaction is committed: the work is in the outbox. If publishing
        # fails now, the relay publishes it later; the reader's request stands.
        try:
            await self.bus.publish(changes)
        except Exception:
            log.warning("publish deferred to the outbox relay", exc_info=True)

    async def create(self, req: NewStory, *, client: str) -> tuple[str, str]:
        for text in (req.premise, req.style or "", req.hero_name or ""):
            if not safety.check(text, age=req.age).ok:
                raise Unsuitable(safety.kind_refusal(req.language))
        await self._require_broker()
        if self.bus.llm_depth > self.settings.max_queue_depth:
            raise Crowded(
                f"The story machine is very busy right now ({self.bus.llm_depth} pages are waiting "
                "to be written). Please try again in a minute."
            )
        if not self.limit.allow(client):
            raise RateLimited(
                f"You have started {self.settings.create_per_minute} stories in the last minute. "
                "Please wait a minute before starting another."
            )
        story_id = uuid.uuid4().hex
        hero_path = await self._keep_hero(story_id, req.hero_picture) if req.hero_picture else None
        try:
            story_id, token, changes = await self.store.create_story(
                premise=req.premise,
                age=req.age,
                language=req.language,
                style=req.style or self.settings.default_style,
                total_pages=self.settings.story_pages,
                story_id=story_id,
                hero_name=req.hero_name,
                hero_path=hero_path,
            )
        except BaseException:
            if hero_path:  # no story, so no picture of its hero either
                await asyncio.to_thread(hero.remove, self.media, story_id)
            raise
        await self._publish(changes)
        log.info("story started", extra={"story_id": story_id})
        return story_id, token

    async def _keep_hero(self, story_id: str, data_url: str) -> str:
        """The hero picture decoded, re-encoded within the caps and kept with the story."""
        settings = self.settings

        def keep() -> str:
            raw = hero.decode_data_url(data_url, max_bytes=settings.hero_max_bytes)
            jpeg = hero.normalise(raw, max_bytes=settings.hero_max_bytes, max_pixels=settings.hero_max_pixels)
            return hero.save(self.media, story_id, jpeg)

        try:
            return await asyncio.to_thread(keep)
        except hero.BadHero as exc:
            raise Invalid(str(exc)) from None

    async def choose(self, story_id: str, req: Choice) -> None:
        await self._require_broker()
        changes = await self.store.choose(story_id, page=req.page, choice=req.choice, action=req.action)
        await self._publish(changes)

    async def redraw(self, story_id: str, page: int) -> None:
        await self._require_broker()
        await self._publish(await self.store.redraw(story_id, page=page))

    async def redraw_sheet(self, story_id: str) -> None:
        await self._require_broker()
        await self._publish(await self.store.redraw_sheet(story_id))

    async def retry(self, story_id: str, page: int) -> None:
        await self._require_broker()
        await self._publish(await self.store.retry_page(story_id, page=page))
