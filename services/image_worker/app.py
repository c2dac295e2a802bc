"""Builds the illustrator: pictures from `image.tasks`, drawn by a provider, kept in MEDIA_DIR.

The provider (provider.py) is jimeng-api or Volcengine Ark, chosen by IMAGE_PROVIDER;
nothing here depends on which one draws.

The picture is downloaded at once and written under MEDIA_DIR (shared with the
gateway, which serves it); only then is the result published and the task acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from services.common import contracts as c
from services.common import media
from services.common.amqp import Link, declare_topology
from services.common.budget import connect, make_budget
from services.common.bus import make_broker, publish_work
from services.common.consumer import Delivery, GiveUp, Retries, Retry, consume, parser
from services.common.control import latest_sessions, sent_by
from services.common.errors import reader_error
from services.common.logs import register_secrets
from services.common.mediastore import FileStore, open_store
from services.common.metrics import PICTURES
from services.common.ops import Checks, OpsServer
from services.common.topology import Topology
from services.image_worker.claims import Claims, FileClaims, Ledger, RedisClaims
from services.image_worker.config import ImageSettings
from services.image_worker.download import Downloader
from services.image_worker.jimeng import Jimeng, SessionPool
from services.image_worker.provider import ImageError, Provider, Tally
from services.image_worker.providers import adopt_kept_sessions, make_provider

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


# Failures after which the provider may still draw, and charge for, the picture.
UNKNOWN_OUTCOME = ("image_timeout",)
DRAWN_ELSEWHERE_POLL = 10.0  # seconds: a picture drawn for another request is looked for again
DOWNLOAD_PAUSES = (1.0, 3.0)  # seconds between tries of one download within an attempt


class Illustrator:
    def __init__(self, *, settings: ImageSettings, broker: RabbitBroker, topology: Topology) -> None:
        self.settings = settings
        self.broker = broker
        self.topo = topology
        self.sessions = SessionPool(settings.session_ids)
        self.provider: Provider | None = None
        self.downloader: Downloader | None = None
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
        self.budget = make_budget(
            self.redis,
            prefix=settings.rabbitmq_prefix,
            name=settings.provider,
            account=settings.account(),
            concurrency=settings.image_concurrency,
        )
        # One delivery may ask the provider up to four times (softened, from text); all of
        # them together stay under RabbitMQ's consumer timeout (30 min), past which the
        # broker would hand the task to another worker, which would pay again.
        self.attempt_limit = min(settings.draw_timeout + 120.0, ATTEMPT_LIMIT)
        # Set (and replaced) whenever this process settles a sheet: wakes held pictures.
        self._sheet_settled = asyncio.Event()

    async def start(self) -> None:
        if isinstance(self.media, FileStore):
            self.media.root.mkdir(parents=True, exist_ok=True)
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
        if self.redis is not None:
            await self.redis.aclose()

    def forget_session_check(self) -> None:
        if isinstance(self.provider, Jimeng):
            self.provider.forget_session_check()

    async def handle(self, task: c.ImageTask, delivery: Delivery) -> None:
        extra = {"story_id": task.story_id, "page": task.page, "attempt": task.attempt}
        name = media.drawing_name(kind=task.kind, page=task.page, attempt=task.attempt, sheet=task.sheet)
        ledger = Ledger(self.claims, task.story_id, name, task.request)
        resume: dict[str, Any] = {}
        if task.request:
            status, held = await self.claims.claim(
                task.story_id, name, task.request, stale_after=self.claim_stale
            )
            if status == "done":
                log.info("picture drawn already; its result is sent again", extra=extra)
                await self._result(c.ImageReady.model_validate(held))
                return
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
            if status == "drawn":
                resume = held
        if task.kind == "sheet":
            await asyncio.to_thread(media.clear_sheet_failed, self.media, task.story_id, task.sheet)
        sheet_wait = task.use_sheet and not resume
        reference, note = await self._sheet_for(task, delivery) if sheet_wait else (None, None)
        if task.kind == "sheet":  # the child's own hero, when the parent gave one
            reference = media.hero_reference(task.story_id, task.hero)
        tally = Tally()
        try:
            async with asyncio.timeout(self.attempt_limit):
                path, used, why = await self.draw(
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
            provider=self.provider.name if self.provider is not None else "",
        )
        try:
            await self._result(report, patient=False)
        except Exception:  # the cost record must never fail the picture
            log.warning("usage report not delivered", extra={"story_id": task.story_id})

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

    async def _result(self, result: c.ImageReady | c.UsageReport, *, patient: bool = True) -> None:
        # Patient: a picture drawn (and paid for) is not drawn again because the broker
        # blinked; a requeued task finds its claim done and sends the result again.
        headers = {"story_id": result.story_id}
        key = self.topo.results_key
        await publish_work(self.broker, self.topo, result, routing_key=key, headers=headers, patient=patient)


def soften(prompt: str) -> str:
    return (
        "A gentle, cheerful, completely child-safe picture book illustration. "
        + prompt
        + " Calm mood, soft colours, nothing frightening."
    )


def create_app(settings: ImageSettings) -> FastStream:
    register_secrets(settings.secrets())
    topology = Topology(settings.rabbitmq_prefix)
    broker = make_broker(settings.rabbitmq_url, service="image_worker")
    link = Link(settings.rabbitmq_url, name="image_worker")
    illustrator = Illustrator(settings=settings, broker=broker, topology=topology)
    replica = f"image-{socket.gethostname()}-{os.getpid()}"

    async def checks() -> Checks:
        assert illustrator.provider is not None
        broker_ok = "ok" if link.connected else "unreachable: check RABBITMQ_URL"
        media_ok = await asyncio.to_thread(illustrator.media.check, write=False)
        return {"broker": broker_ok, "media": media_ok, **await illustrator.provider.readiness()}

    ops = OpsServer(host=settings.ops_host, port=settings.image_ops_port, checks=checks)
    retries = Retries(settings.image_max_attempts, base=10.0, cap=RETRY_CAP)
    consume(
        broker,
        topology,
        topology.image_queue,
        illustrator.handle,
        parse=parser(c.image_task_adapter),
        prefetch=settings.image_concurrency,
        retries=retries,
        report=illustrator.failed,
    )

    @broker.subscriber(topology.control_queue(replica), topology.control_exchange, no_reply=True)
    async def on_control(msg: RabbitMessage) -> None:
        try:
            command = c.JimengSessions.model_validate_json(msg.body)
        except ValueError:
            log.error("unreadable control message ignored")
            return
        apply_command(command)

    def apply_command(command: c.JimengSessions) -> None:
        register_secrets(command.ids)
        illustrator.sessions.applied_at = max(illustrator.sessions.applied_at, command.at)
        illustrator.sessions.apply(command.mode, command.ids, source=sent_by(command))
        illustrator.forget_session_check()

    async def follow_kept_sessions() -> None:
        """A rotation sent while this worker's control queue was gone (a reconnect to
        the broker) is still applied: the kept command is read again every minute."""
        while True:
            await asyncio.sleep(settings.jimeng_check_every)
            with contextlib.suppress(Exception):  # the broker may be away; next time then
                kept = await latest_sessions(link, topology)
                if kept is not None and kept.at > illustrator.sessions.applied_at:
                    log.warning("a session command sent while this worker was away is applied now")
                    apply_command(kept)

    app = FastStream(broker, logger=logging.getLogger("faststream"))
    following: list[asyncio.Task[None]] = []

    @app.on_startup
    async def _start() -> None:
        await link.connect()
        await declare_topology(link, topology)
        if settings.provider == "jimeng":
            await adopt_kept_sessions(link, topology, illustrator.sessions)
            following.append(asyncio.create_task(follow_kept_sessions(), name="follow-kept-sessions"))
        await illustrator.start()
        await ops.start()

    @app.on_shutdown
    async def _stop() -> None:
        for task in following:
            task.cancel()
        await ops.stop()
        await illustrator.stop()
        await link.close()

    return app
