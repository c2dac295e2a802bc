"""One picture task from delivery to result: the claim, the character sheet, the attempt.

A task names its request, so a picture asked for twice is drawn once: the claim
(claims.py) says whether it is done already (its result is sent again), being
drawn for another request (looked for again later), or was asked of the provider
by a delivery that never finished (given up, not paid for twice). A page that is
drawn from the story's character sheet waits for the sheet first. The drawing
itself is the painter's (painter.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from faststream.rabbit import RabbitBroker

from services.common import contracts as c
from services.common import media
from services.common.budget import connect, make_budget
from services.common.bus import publish_work
from services.common.consumer import Delivery, GiveUp, Retry
from services.common.errors import reader_error
from services.common.mediastore import FileStore, open_store
from services.common.metrics import PICTURES
from services.common.topology import Topology
from services.image_worker.claims import Claims, FileClaims, Ledger, RedisClaims
from services.image_worker.config import ImageSettings
from services.image_worker.jimeng import Jimeng, SessionPool
from services.image_worker.painter import Painter
from services.image_worker.provider import ImageError, Tally

log = logging.getLogger(__name__)

# A page's picture waiting for its story's character sheet is held by this process,
# looking for the sheet every SHEET_LOOK seconds (and woken at once when this process
# drew it), for at most SHEET_HOLD seconds a delivery; then it is parked for SHEET_POLL
# seconds in a retry queue, which frees its slot, and comes back to look again.
RETRY_CAP = 180.0  # seconds: the longest wait before a failed picture is tried again
SHEET_LOOK = 0.1
SHEET_HOLD = 30.0
SHEET_POLL = 2.0
ATTEMPT_LIMIT = 1700.0  # seconds: all of one delivery's calls, under the broker's 1800 s
DRAWN_ELSEWHERE_POLL = 10.0  # seconds: a picture drawn for another request is looked for again


class Illustrator:
    def __init__(self, *, settings: ImageSettings, broker: RabbitBroker, topology: Topology) -> None:
        self.settings = settings
        self.broker = broker
        self.topo = topology
        self.sessions = SessionPool(settings.session_ids)
        # A claim untouched this long belongs to a request whose worker died (claims.py):
        # longer than one attempt, the longest wait between attempts and a sheet hold.
        self.claim_stale = settings.draw_timeout + RETRY_CAP + SHEET_HOLD + 60.0
        self.media = open_store(settings)
        self.redis = connect(settings.redis_url)
        self.claims: Claims = (
            RedisClaims(self.redis, prefix=settings.rabbitmq_prefix, lease=self.claim_stale)
            if self.redis is not None
            # Settings refuse an object store without Redis: only a folder gets here.
            else FileClaims(settings.claims_dir)
        )
        # IMAGE_CONCURRENCY pictures at once per provider account, fleet-wide with Redis.
        budget = make_budget(
            self.redis,
            prefix=settings.rabbitmq_prefix,
            name=settings.provider,
            account=settings.account(),
            concurrency=settings.image_concurrency,
        )
        self.painter = Painter(settings=settings, sessions=self.sessions, media=self.media, budget=budget)
        # One delivery may ask the provider up to four times (softened, from text); all of
        # them together stay under RabbitMQ's consumer timeout (30 min), past which the
        # broker would hand the task to another worker, which would pay again.
        self.attempt_limit = min(settings.draw_timeout + 120.0, ATTEMPT_LIMIT)
        # Set (and replaced) whenever this process settles a sheet: wakes held pictures.
        self._sheet_settled = asyncio.Event()

    async def start(self) -> None:
        if isinstance(self.media, FileStore):
            self.media.root.mkdir(parents=True, exist_ok=True)
        await self.painter.start()

    async def stop(self) -> None:
        await self.painter.stop()
        if self.redis is not None:
            await self.redis.aclose()

    def forget_session_check(self) -> None:
        if isinstance(self.painter.provider, Jimeng):
            self.painter.provider.forget_session_check()

    async def handle(self, task: c.ImageTask, delivery: Delivery) -> None:
        extra = {"story_id": task.story_id, "page": task.page, "attempt": task.attempt}
        name = media.drawing_name(kind=task.kind, page=task.page, attempt=task.attempt, sheet=task.sheet)
        ledger = Ledger(self.claims, task.story_id, name, task.request)
        resume = await self._claim(task, name) if task.request else {}
        if resume is None:
            log.info("picture drawn already; its result is sent again", extra=extra)
            return
        if task.kind == "sheet":
            await asyncio.to_thread(media.clear_sheet_failed, self.media, task.story_id, task.sheet)
        sheet_wait = task.use_sheet and not resume
        reference, note = await self._sheet_for(task, delivery) if sheet_wait else (None, None)
        if task.kind == "sheet":  # the child's own hero, when the parent gave one
            reference = media.hero_reference(task.story_id, task.hero)
        tally = Tally()
        path, used, why = await self._attempt(task, delivery, reference, tally, ledger, resume)
        tally.pictures = 1
        if task.kind == "sheet":
            self.sheet_settled()
        await self._report(task, tally, delivery)
        log.info("picture drawn and stored", extra=extra)
        PICTURES.labels("done").inc()
        ready = c.ImageReady(
            story_id=task.story_id,
            page=task.page,
            media_path=path,
            attempt=task.attempt,
            reference="character_sheet" if used else "text_only",
            note=why or note,
            sheet=task.sheet if task.kind == "sheet" else "",
        )
        if task.request:
            await self.claims.finish(task.story_id, name, task.request, ready.model_dump(mode="json"))
        await self._result(ready)

    async def _claim(self, task: c.ImageTask, name: str) -> dict[str, Any] | None:
        """Claims the request's picture: what an earlier attempt left to resume ({} for
        nothing), or None when it is done already and its result was sent again."""
        status, held = await self.claims.claim(
            task.story_id, name, task.request, stale_after=self.claim_stale
        )
        if status == "done":
            await self._result(c.ImageReady.model_validate(held))
            return None
        if status == "taken":
            # Drawn for another request right now: look again later for its result,
            # instead of paying for the same picture twice.
            waiting = "this picture is being drawn for another request; waiting for it"
            raise Retry(waiting, code="drawn_elsewhere", after=DRAWN_ELSEWHERE_POLL, counted=False)
        if status == "submitted":
            lost = (
                "image_interrupted: this picture was asked of the provider by a delivery that never "
                "finished (its worker stopped or lost the broker); not asked again, as it may be drawn "
                "and paid for already"
            )
            raise GiveUp(lost, code="image_interrupted")
        return held if status == "drawn" else {}

    async def _attempt(
        self,
        task: c.ImageTask,
        delivery: Delivery,
        reference: str | None,
        tally: Tally,
        ledger: Ledger,
        resume: dict[str, Any],
    ) -> tuple[str, bool, str | None]:
        """One delivery's drawing, within the attempt limit; a failure says retry or give up."""
        try:
            async with asyncio.timeout(self.attempt_limit):
                return await self.painter.draw(
                    task,
                    reference=reference,
                    tally=tally,
                    last=delivery.last_attempt,
                    ledger=ledger,
                    resume=resume,
                )
        except TimeoutError:
            await self._report(task, tally, delivery)
            late = (
                f"image_timeout: the picture was not drawn within {self.attempt_limit:.0f} s; not asked "
                "again, because the provider goes on drawing (and charging) after we leave"
            )
            raise GiveUp(late, code="image_timeout") from None
        except ImageError as err:
            await self._report(task, tally, delivery)
            if err.retryable:
                raise Retry(f"picture attempt failed ({err.message})", code=err.code) from None
            raise GiveUp(f"{err.code}: {err.message}", code=err.code) from None

    async def _sheet_for(self, task: c.ImageTask, delivery: Delivery) -> tuple[str | None, str | None]:
        """The story's character sheet to draw the page from, or why there is none."""
        waited = float(delivery.headers.get("x-sheet-wait", 0) or 0)
        hold = min(SHEET_HOLD, max(0.0, self.settings.image_sheet_wait - waited))
        found, held = await self.wait_for_sheet(task.story_id, task.sheet, hold)
        waited += held
        if found is None and waited < self.settings.image_sheet_wait:
            # The sheet is still being drawn after a long hold: park, which frees this
            # slot, and come back without spending one of the task's attempts.
            raise Retry(
                "the character sheet is still being drawn",
                code="waiting_for_sheet",
                after=SHEET_POLL,
                counted=False,
                headers={"x-sheet-wait": waited + SHEET_POLL},
            )
        if found not in (None, "failed"):
            return found, None
        return (
            None,
            "the character sheet could not be drawn" if found else "the character sheet was not ready",
        )

    async def failed(self, task: c.ImageTask, given_up: GiveUp) -> c.ImageFailed:
        """What the reader is told when the consumer gives the picture up (once; they may
        ask for a redraw); a failed sheet lets the pages waiting for it draw from text."""
        PICTURES.labels(given_up.code).inc()
        if task.kind == "sheet":
            await asyncio.to_thread(media.mark_sheet_failed, self.media, task.story_id, task.sheet)
            self.sheet_settled()
        if task.request:
            name = media.drawing_name(kind=task.kind, page=task.page, attempt=task.attempt, sheet=task.sheet)
            await self.claims.release(task.story_id, name, task.request)
        return c.ImageFailed(
            story_id=task.story_id,
            page=task.page,
            attempt=task.attempt,
            error=reader_error(given_up.code),
            sheet=task.sheet if task.kind == "sheet" else "",
        )

    async def wait_for_sheet(self, story_id: str, key: str, hold: float) -> tuple[media.Sheet, float]:
        """The story's sheet (see find_sheet) as soon as it is there, looking for at most
        `hold` seconds; and how long that took."""
        started = time.monotonic()
        while True:
            found = await asyncio.to_thread(media.find_sheet, self.media, story_id, key)
            left = hold - (time.monotonic() - started)
            if found is not None or left <= 0:
                return found, time.monotonic() - started
            # A sheet drawn elsewhere is seen on the next look; one drawn here wakes us now.
            with contextlib.suppress(TimeoutError):
                look = max(SHEET_LOOK, self.media.look_every)
                await asyncio.wait_for(self._sheet_settled.wait(), timeout=min(look, left))

    def sheet_settled(self) -> None:
        """A sheet was stored or marked failed by this process: the held pictures look again."""
        event, self._sheet_settled = self._sheet_settled, asyncio.Event()
        event.set()

    async def _report(self, task: c.ImageTask, tally: Tally, delivery: Delivery) -> None:
        """What this attempt cost, counted only for calls that reached the provider."""
        if not (tally.calls or tally.pictures):
            return
        report = c.UsageReport(
            story_id=task.story_id,
            image_calls=tally.calls,
            pictures=tally.pictures,
            retries=1 if delivery.retries > 0 else 0,
            provider=self.painter.provider.name if self.painter.provider is not None else "",
        )
        try:
            await self._result(report, patient=False)
        except Exception:  # the cost record must never fail the picture
            log.warning("usage report not delivered", extra={"story_id": task.story_id})

    async def _result(self, result: c.ImageReady | c.UsageReport, *, patient: bool = True) -> None:
        # Patient: a picture drawn (and paid for) is not drawn again because the broker
        # blinked; a requeued task finds its claim done and sends the result again.
        headers = {"story_id": result.story_id}
        key = self.topo.results_key
        await publish_work(self.broker, self.topo, result, routing_key=key, headers=headers, patient=patient)
