"""The drawing steps of one picture: ask the provider, download at once, store.

A refusal by content policy is asked once more with a softened prompt; a page
drawn from the character sheet falls back to its text alone on the last attempt;
a picture drawn by an earlier attempt whose download failed is downloaded again,
not drawn (and paid for) again. Every request to the provider is written in the
claim's ledger while its outcome is unknown (claims.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from services.common import contracts as c
from services.common import media
from services.common.budget import Budget
from services.common.mediastore import MediaStore
from services.image_worker.claims import Ledger
from services.image_worker.config import ImageSettings
from services.image_worker.download import Downloader
from services.image_worker.jimeng import SessionPool
from services.image_worker.provider import ImageError, Provider, Tally
from services.image_worker.providers import make_provider

log = logging.getLogger(__name__)

# Failures after which the provider may still draw, and charge for, the picture.
UNKNOWN_OUTCOME = ("image_timeout",)
DOWNLOAD_PAUSES = (1.0, 3.0)  # seconds between tries of one download within an attempt


@dataclass
class Painter:
    settings: ImageSettings
    sessions: SessionPool
    media: MediaStore
    budget: Budget
    # Made at start: the provider may open connections and start its watcher.
    provider: Provider | None = None
    downloader: Downloader | None = None

    async def start(self) -> None:
        self.provider = make_provider(self.settings, self.sessions)
        await self.provider.start()
        self.downloader = Downloader(
            max_bytes=self.settings.image_max_bytes,
            allow=self.settings.image_fetch_allow,
            max_side=self.settings.image_max_side,
            max_pixels=self.settings.image_max_pixels,
        )

    async def stop(self) -> None:
        if self.provider is not None:
            await self.provider.close()
        if self.downloader is not None:
            await self.downloader.close()

    async def draw(
        self,
        task: c.ImageTask,
        *,
        reference: str | None = None,
        tally: Tally | None = None,
        last: bool = True,
        ledger: Ledger | None = None,
        resume: dict[str, Any] | None = None,
    ) -> tuple[str, bool, str | None]:
        """One attempt: draw, download at once, store; (media path, drawn from the sheet, why not).

        With a reference (the character sheet) the picture is composed from it. When
        that call fails the attempt fails, and the next attempt tries the sheet again;
        only the `last` attempt falls back to the page's text alone, and says so.
        A picture drawn by an earlier attempt whose download failed (`resume`) is
        downloaded again, not drawn again.
        """
        assert self.downloader is not None
        tally = tally or Tally()
        ledger = ledger or Ledger.none()
        if resume:
            url, used, why = str(resume["url"]), bool(resume.get("used")), resume.get("why")
        else:
            url, used, why = await self._draw_once(task, reference, tally, last, ledger)
        data, ext = await self._download(url)
        path = await asyncio.to_thread(
            media.store_picture,
            self.media,
            story_id=task.story_id,
            page=task.page,
            attempt=task.attempt,
            data=data,
            ext=ext,
            sheet=task.sheet if task.kind == "sheet" else None,
        )
        return path, used, why

    async def _download(self, url: str) -> tuple[bytes, str]:
        """The drawn picture's bytes; a CDN's bad moment is waited out here, briefly, then by
        a later attempt that downloads the same URL (it lasts hours) instead of drawing."""
        assert self.downloader is not None
        for pause in DOWNLOAD_PAUSES:
            try:
                return await self.downloader.fetch(url)
            except ImageError as err:
                if not err.retryable:
                    raise
                log.warning("downloading the picture failed (%s); trying again in %.0fs", err.message, pause)
            await asyncio.sleep(pause)
        return await self.downloader.fetch(url)

    async def _draw_once(
        self, task: c.ImageTask, reference: str | None, tally: Tally, last: bool, ledger: Ledger
    ) -> tuple[str, bool, str | None]:
        """Ask the provider for the picture (from the sheet, else from text on the last
        attempt); the URL is kept in the claim before anything else can fail."""
        sheet = await self._sheet_uri(reference) if reference is not None else None
        why: str | None = None
        try:
            url = await self._draw_softened(task, sheet, tally, ledger)
        except ImageError as err:
            if sheet is None or not err.retryable or not last:
                raise
            log.warning(
                "drawing from the character sheet failed again (%s); drawing from text alone",
                err.message,
                extra={"story_id": task.story_id, "page": task.page},
            )
            sheet, why = None, f"drawn from text alone: the reference call failed ({err.code})"
            url = await self._draw_softened(task, None, tally, ledger)
        await ledger.drawn(url, used=sheet is not None, why=why)
        return url, sheet is not None, why

    async def _draw_softened(self, task: c.ImageTask, sheet: str | None, tally: Tally, ledger: Ledger) -> str:
        """One picture from the provider; a refusal by policy is tried once, softened."""
        ratio = task.ratio or self.settings.jimeng_ratio
        try:
            return await self._ask(task.prompt, ratio, sheet, tally, ledger)
        except ImageError as err:
            if not err.policy:
                raise
        log.warning(
            "picture refused by policy; trying a softened prompt",
            extra={"story_id": task.story_id, "page": task.page},
        )
        return await self._ask(soften(task.prompt), ratio, sheet, tally, ledger)

    async def _ask(self, prompt: str, ratio: str, sheet: str | None, tally: Tally, ledger: Ledger) -> str:
        """One request to the provider, recorded in the claim while its outcome is unknown."""
        assert self.provider is not None
        async with self.budget.slot():
            await ledger.submitted()
            try:
                url = await self.provider.draw(prompt=prompt, ratio=ratio, reference=sheet, tally=tally)
            except ImageError as err:
                if err.code not in UNKNOWN_OUTCOME:
                    await ledger.settled()  # answered: nothing was drawn, nothing paid
                raise
        return url

    async def _sheet_uri(self, key: str) -> str | None:
        """The stored character sheet as the provider takes it (None if it is gone)."""
        data = await asyncio.to_thread(self.media.get, key)
        return media.data_uri(data, key) if data is not None else None


def soften(prompt: str) -> str:
    return (
        "A gentle, cheerful, completely child-safe picture book illustration. "
        + prompt
        + " Calm mood, soft colours, nothing frightening."
    )
