"""Builds the story writer: outlines and pages from `llm.tasks`, written with Moonshot.

A page is streamed: the illustration prompt comes first in the model's JSON, and the
picture is requested the moment it is complete, so drawing and writing overlap. Text
deltas go to the live exchange as they arrive (coalesced to ~20 frames a second);
the finished page goes to `gateway.results`. A task is acknowledged only after its
result is confirmed by the broker.

One delivery is one upstream attempt. A failed attempt that may succeed later is
parked in a retry queue (no consumer waits for it); one that cannot, or has used
its attempts, becomes a `PageFailed` the reader sees, and the exhausted message is
kept in the dead-letter queue with its reason. A rate limit or an outage is waited
out for up to `MOONSHOT_WAIT_OUT` seconds (see policy.py), and the reader is told
the page waits, and why (`PageWaiting`), until Moonshot answers again (`PageResumed`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai
from aiolimiter import AsyncLimiter
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from openai import AsyncOpenAI
from pydantic import ValidationError

from services.common import contracts as c
from services.common import safety
from services.common.bus import (
    Delivery,
    LivePublisher,
    backoff,
    broker_connected,
    declare_topology,
    make_broker,
    parse,
    publish_work,
    settle,
)
from services.common.errors import reader_error
from services.common.logs import register_secrets
from services.common.metrics import PAGES, UPSTREAM_SECONDS
from services.common.ops import Checks, OpsServer
from services.common.settings import mask
from services.common.topology import Topology
from services.llm_worker import prompts
from services.llm_worker.config import LlmSettings
from services.llm_worker.moonshot import UNREACHABLE, LlmError, Usage, classify, make_client, stream_text
from services.llm_worker.policy import wait_out
from services.llm_worker.writer import OutlineReader, PageReader

log = logging.getLogger(__name__)

DELTA_EVERY = 0.05  # seconds: coalesce tokens into at most ~20 frames a second
KEY_CHECK_EVERY = 60.0
KEY_RECHECK_FAILED = 10.0


@dataclass
class Attempt:
    """One delivery of a task: what its calls cost, and, when it follows a wait the
    reader was told about, the news to send as soon as Moonshot answers again."""

    usage: Usage = field(default_factory=Usage)
    resumed: c.PageResumed | None = None


def _outline_texts(outline: c.Outline) -> list[str]:
    """Every part of an outline a reader or a picture prompt will carry."""
    people = [part for ch in outline.characters for part in (ch.name, ch.look)]
    return [outline.title, outline.style, outline.setting, *people, *outline.arc]


def _lead_style(task: c.OutlineTask, style: str) -> str:
    """The reader's chosen style leads; the model's wording of it follows."""
    if task.brief.style.lower() in style.lower():
        return style
    return f"{task.brief.style}, {style}".strip(", ")


class Writer:
    def __init__(self, *, settings: LlmSettings, broker: RabbitBroker, topology: Topology) -> None:
        self.settings = settings
        self.broker = broker
        self.topo = topology
        self.live = LivePublisher(broker, topology)
        self.client: AsyncOpenAI | None = None
        self._key_check: tuple[float, str] | None = None
        # The Moonshot budget of this process: calls in flight and calls per minute.
        self.in_flight = asyncio.Semaphore(settings.moonshot_concurrency)
        self.per_minute = AsyncLimiter(settings.moonshot_rpm, 60) if settings.moonshot_rpm else None

    async def start(self) -> None:
        self.client = make_client(self.settings)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def key_check(self) -> str:
        """Is the Moonshot key accepted? A cheap authenticated call, kept for a minute."""
        now = time.monotonic()
        if self._key_check is not None:
            at, verdict = self._key_check
            if now - at < (KEY_CHECK_EVERY if verdict == "ok" else KEY_RECHECK_FAILED):
                return verdict
        assert self.client is not None
        key = mask(self.settings.moonshot_api_key.get_secret_value())
        try:
            await self.client.get("/users/me/balance", cast_to=object)
            verdict = "ok"
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                verdict = (
                    f"MOONSHOT_API_KEY ({key}) rejected with {exc.status_code}: a key works only on "
                    "its own platform (api.moonshot.cn or api.moonshot.ai); check MOONSHOT_BASE_URL"
                )
            else:
                verdict = f"Moonshot answered {exc.status_code} to a credential check"
        except openai.APIError as exc:
            verdict = f"Moonshot unreachable ({type(exc).__name__}): check MOONSHOT_BASE_URL and LLM_PROXY"
        self._key_check = (now, verdict)
        return verdict

    async def _result(self, result: c.Contract, story_id: str) -> None:
        await publish_work(
            self.broker,
            self.topo,
            result,
            routing_key=self.topo.results_key,
            headers={"story_id": story_id},
        )

    async def _notice(self, notice: c.PageWaiting | c.PageResumed) -> None:
        """Tell the reader the page waits, or goes on: a courtesy that never holds up
        or loses the page itself (the retry is parked whether or not this arrives)."""
        try:
            await self._result(notice, notice.story_id)
        except Exception:
            log.warning("%s not delivered", notice.kind, extra={"story_id": notice.story_id})

    async def _picture(self, task: c.ImageTask) -> None:
        await publish_work(
            self.broker,
            self.topo,
            task,
            routing_key=self.topo.image_key,
            headers={"story_id": task.story_id},
        )

    # ------------------------------------------------------------------ one delivery
    async def handle(self, task: c.OutlineTask | c.PageTask, delivery: Delivery) -> None:
        page = task.page if isinstance(task, c.PageTask) else 0
        gentle = delivery.headers.get("x-gentle") == "1"
        # Waits for a temporary failure are not attempts: they are bounded by time.
        waits = int(delivery.headers.get("x-waits", 0) or 0)
        tries = delivery.retries + waits + 1
        extra = {"story_id": task.story_id, "page": page, "attempt": tries}
        attempt = Attempt()
        if waits:
            attempt.resumed = c.PageResumed(
                story_id=task.story_id, page=page, attempt=task.attempt, tries=tries
            )
        retried = tries > 1
        try:
            if isinstance(task, c.OutlineTask):
                await self.write_outline(task, gentle=gentle, attempt=attempt)
            else:
                again = retried or delivery.redelivered
                await self.write_page(task, gentle=gentle, again=again, attempt=attempt)
            return
        except Exception as exc:  # every failure is classified; none escapes as a crash
            err = classify(exc)
        finally:
            await self._report(task.story_id, attempt.usage, retried=retried)
        extra["code"] = err.code
        if err.wait is not None:
            now = time.time()
            since = float(delivery.headers.get("x-waiting-since") or now)
            delay = wait_out(
                elapsed=now - since, waits=waits, hint=err.retry_after, budget=self.settings.moonshot_wait_out
            )
            if delay is not None:
                log.warning("%s; waiting %.1fs before trying again", err.message, delay, extra=extra)
                waiting = c.PageWaiting(
                    story_id=task.story_id,
                    page=page,
                    attempt=task.attempt,
                    tries=tries,
                    reason=err.wait,
                    retry_in=round(delay, 1),
                    retry_at=now + delay,
                )
                await self._notice(waiting)
                await delivery.retry_later(
                    delay,
                    code=err.code,
                    counted=False,
                    headers={"x-waits": waits + 1, "x-waiting-since": since},
                )
                return
            waited = f"{err.message} Waited {now - since:.0f}s (MOONSHOT_WAIT_OUT) in vain."
            err = LlmError(err.code, waited, True, wait=err.wait)
        if err.code == "llm_unsafe_output" and delivery.retries + 1 < self.settings.llm_max_attempts:
            log.warning("the page was not fit for the reader; writing it again, gently", extra=extra)
            await delivery.retry_later(0, code=err.code, headers={"x-gentle": "1"})
            return
        if err.code == "llm_content_filter" and not gentle:
            log.warning("refused by the content filter; retrying once, gently", extra=extra)
            await delivery.retry_later(0, code=err.code, headers={"x-gentle": "1"})
            return
        if err.retryable and err.wait is None and delivery.retries + 1 < self.settings.llm_max_attempts:
            delay = backoff(delivery.retries, base=2, cap=60)
            log.warning("attempt failed (%s); retrying in %.1fs", err.message, delay, extra=extra)
            await delivery.retry_later(delay, code=err.code)
            return
        log.error("page failed for good: %s", err.message, extra=extra)
        PAGES.labels(err.code).inc()
        error = reader_error(err.code)
        if err.code == "unsuitable_idea":
            error = c.ErrorInfo(code=err.code, message=safety.kind_refusal(task.brief.language))
        failed = c.PageFailed(story_id=task.story_id, page=page, error=error, attempt=task.attempt)
        await self._result(failed, task.story_id)
        if err.retryable:
            await delivery.dead_letter(f"{err.code}: {err.message} ({tries} attempts)", code=err.code)

    async def suitable(self, text: str, *, brief: c.StoryBrief, attempt: Attempt) -> bool:
        """The word list first, then the model's own judgement for the reader's age."""
        if not safety.check(text, age=brief.age).ok:
            return False
        messages = prompts.judge_messages(text, age=brief.age, language=brief.language)
        answer = "".join([p async for p in self._stream(messages, attempt, max_tokens=120)])
        try:
            verdict = json.loads(answer[answer.find("{") : answer.rfind("}") + 1])
            return bool(verdict.get("suitable", False))
        except ValueError:
            raise LlmError("llm_bad_output", "the suitability check was not readable", True) from None

    async def _report(self, story_id: str, usage: Usage, *, retried: bool) -> None:
        if not usage:
            return  # no call reached Moonshot: nothing was spent
        report = c.UsageReport(
            story_id=story_id,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            llm_calls=usage.calls,
            retries=1 if retried else 0,
        )
        try:
            await self._result(report, story_id)
        except Exception:  # the cost record must never fail the page
            log.warning("usage report not delivered", extra={"story_id": story_id})

    # ------------------------------------------------------------------ outline
    async def write_outline(
        self, task: c.OutlineTask, *, gentle: bool = False, attempt: Attempt | None = None
    ) -> None:
        messages = prompts.outline_messages(task)
        if gentle:
            messages[0]["content"] += "\nKeep everything especially gentle and calm."
        attempt = Attempt() if attempt is None else attempt
        if not await self.suitable(task.brief.premise, brief=task.brief, attempt=attempt):
            raise LlmError("unsuitable_idea", "the premise was judged unsuitable for the reader's age")
        early = OutlineReader()
        requested: str | None = None  # the key of the sheet asked for
        pieces: list[str] = []
        async for piece in self._stream(messages, attempt):
            pieces.append(piece)
            if requested is None and (looks := early.feed(piece)) is not None:
                characters, style = looks
                requested = await self._request_sheet(task, characters, _lead_style(task, style))
        text = "".join(pieces)
        try:
            start, end = text.find("{"), text.rfind("}") + 1
            outline = c.Outline.model_validate(json.loads(text[start:end]))
        except (ValueError, ValidationError) as exc:
            raise LlmError("llm_bad_output", f"the outline was not usable: {exc}", True) from None
        outline = outline.model_copy(update={"style": _lead_style(task, outline.style)})
        if not safety.check_all(_outline_texts(outline), age=task.brief.age).ok:
            # Title, names and looks reach the reader and every picture prompt.
            raise LlmError("llm_unsafe_output", "the outline was not fit for the reader's age", True)
        log.info("outline written", extra={"story_id": task.story_id, "usage": vars(attempt.usage)})
        await self._result(
            c.OutlineReady(story_id=task.story_id, outline=outline, attempt=task.attempt), task.story_id
        )
        if requested != c.sheet_key(outline.characters, outline.style):
            # Not asked for while writing (the model wrote the looks late), or other looks.
            await self._request_sheet(task, outline.characters, outline.style)

    async def _request_sheet(self, task: c.OutlineTask, characters: list[c.Character], style: str) -> str:
        """The character sheet is drawn once per story, as soon as its looks are known;
        every page's picture uses it as its reference, so the rabbit on page three is the
        rabbit from page one."""
        key = c.sheet_key(characters, style)
        prompt = c.sheet_prompt(characters, style)
        if not safety.check(prompt, age=task.brief.age).ok:
            raise LlmError(
                "llm_unsafe_output", "the characters' looks were not fit for the reader's age", True
            )
        await self._picture(
            c.ImageTask(
                story_id=task.story_id,
                page=c.SHEET_PAGE,
                prompt=prompt,
                kind="sheet",
                ratio="16:9",
                sheet=key,
                request=uuid.uuid4().hex,
                hero=task.brief.hero_picture,
            )
        )
        log.info("character sheet requested", extra={"story_id": task.story_id})
        return key

    # ------------------------------------------------------------------ page
    async def write_page(
        self,
        task: c.PageTask,
        *,
        gentle: bool = False,
        again: bool = False,
        attempt: Attempt | None = None,
    ) -> None:
        requested = False

        def scene(illustration: str) -> str:
            if not safety.check(illustration, age=task.brief.age).ok:
                return prompts.safe_scene(task.outline)
            return illustration

        async def request_image(illustration: str) -> None:
            nonlocal requested
            if requested:
                return
            requested = True
            prompt = prompts.image_prompt(task, scene(illustration))
            await self._result(
                c.ImageRequested(
                    story_id=task.story_id, page=task.page, prompt=prompt, attempt=task.image_attempt
                ),
                task.story_id,
            )
            await self._picture(
                c.ImageTask(
                    story_id=task.story_id,
                    page=task.page,
                    prompt=prompt,
                    attempt=task.image_attempt,
                    use_sheet=True,
                    sheet=c.sheet_key(task.outline.characters, task.outline.style),
                    request=uuid.uuid4().hex,
                )
            )
            log.info(
                "picture requested while the text is written",
                extra={"story_id": task.story_id, "page": task.page},
            )

        note: str | None = None
        attempt = Attempt() if attempt is None else attempt
        typed = task.direction if task.direction_typed else None
        if typed and not await self.suitable(typed, brief=task.brief, attempt=attempt):
            # Not a refusal of the story: the page goes on, gently, without that idea.
            task = task.model_copy(update={"direction": None})
            gentle = True
            note = safety.set_aside(task.brief.language)

        if again:
            # A reader may hold text from the attempt that died: tell it to let go.
            await self._live(c.TextReset(story_id=task.story_id, page=task.page, attempt=task.attempt))

        reader = PageReader()
        pending, offset, flushed_at = "", 0, time.monotonic()
        async for piece in self._stream(prompts.page_messages(task, gentle=gentle), attempt):
            progress = reader.feed(piece)
            if progress.illustration:
                await request_image(progress.illustration)
            pending += progress.new_text
            if progress.new_text and not safety.check(reader.text, age=task.brief.age).ok:
                # Stop before the word reaches the reader; the page is written again.
                raise LlmError("llm_unsafe_output", "the page was not fit for the reader's age", True)
            if pending and time.monotonic() - flushed_at >= DELTA_EVERY:
                await self._delta(task, offset, pending)
                offset, pending, flushed_at = offset + len(pending), "", time.monotonic()
        if pending:
            await self._delta(task, offset, pending)
        try:
            draft = reader.finish()
        except ValueError as exc:
            raise LlmError("llm_bad_output", f"the page was not usable: {exc}", True) from None
        if not task.is_last and len(draft.choices) < 2:
            raise LlmError("llm_bad_output", "the page has fewer than 2 choices", True)
        if not task.is_last and not safety.check_all(draft.choices[:3], age=task.brief.age).ok:
            raise LlmError("llm_unsafe_output", "a choice was not fit for the reader's age", True)
        usage = vars(attempt.usage)
        log.info("page written", extra={"story_id": task.story_id, "page": task.page, "usage": usage})
        PAGES.labels("done").inc()
        await request_image(draft.illustration)  # when the model put it last: draw it now
        await self._result(
            c.PageTextDone(
                story_id=task.story_id,
                page=task.page,
                text=draft.text,
                choices=[] if task.is_last else draft.choices[:3],
                image_prompt=prompts.image_prompt(task, scene(draft.illustration)),
                attempt=task.attempt,
                note=note,
                alt=draft.alt or None,
            ),
            task.story_id,
        )

    async def _delta(self, task: c.PageTask, offset: int, text: str) -> None:
        await self._live(
            c.TextDelta(
                story_id=task.story_id,
                page=task.page,
                attempt=task.attempt,
                offset=offset,
                delta=text,
                ts=time.time(),
            )
        )

    async def _live(self, message: c.TextDelta | c.TextReset) -> None:
        # Live text is a courtesy, not a record: not persisted, not confirmed, never
        # blocks the page (the reader gets the whole text with page.text.done).
        await self.live.publish(message)

    async def _stream(
        self, messages: list[dict[str, str]], attempt: Attempt, *, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        """Content pieces of one completion, within the budget; fails on a stall or timeout.

        After a wait, the first piece tells the reader that Moonshot answers again.
        """
        assert self.client is not None
        async with self.in_flight:
            if self.per_minute is not None:
                await self.per_minute.acquire()
            started = time.monotonic()
            deadline = started + self.settings.llm_timeout
            pieces = stream_text(self.client, self.settings, messages, attempt.usage, max_tokens=max_tokens)
            outcome = "ok"
            try:
                while True:
                    left = min(self.settings.llm_stall_timeout, deadline - time.monotonic())
                    if left <= 0:
                        message = "Moonshot took too long for this page."
                        raise LlmError("llm_unavailable", message, True, wait=UNREACHABLE)
                    try:
                        async with asyncio.timeout(left):
                            piece = await pieces.__anext__()
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        message = "Moonshot stopped sending text."
                        raise LlmError("llm_unavailable", message, True, wait=UNREACHABLE) from None
                    if attempt.resumed is not None:
                        resumed, attempt.resumed = attempt.resumed, None
                        await self._notice(resumed)
                    yield piece
            except Exception as exc:
                outcome = classify(exc).code
                raise
            finally:
                UPSTREAM_SECONDS.labels("moonshot", outcome).observe(time.monotonic() - started)
                await pieces.aclose()


def create_app(settings: LlmSettings) -> FastStream:
    register_secrets([settings.moonshot_api_key.get_secret_value()])
    topology = Topology(settings.rabbitmq_prefix)
    broker = make_broker(settings.rabbitmq_url, service="llm_worker")
    writer = Writer(settings=settings, broker=broker, topology=topology)

    async def checks() -> Checks:
        return {
            "broker": "ok" if broker_connected(broker) else "unreachable: check RABBITMQ_URL",
            "moonshot": await writer.key_check(),
        }

    ops = OpsServer(host=settings.ops_host, port=settings.llm_ops_port, checks=checks)

    @broker.subscriber(
        topology.llm_queue,
        topology.work_exchange,
        channel=Channel(prefetch_count=settings.llm_concurrency),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_task(msg: RabbitMessage) -> None:
        delivery = Delivery(broker, topology, msg, key=topology.llm_key)

        async def work() -> None:
            await writer.handle(parse(c.llm_task_adapter, msg.body), delivery)

        await settle(delivery, work)

    app = FastStream(broker, logger=logging.getLogger("faststream"))

    @app.on_startup
    async def _start() -> None:
        await broker.connect()
        await declare_topology(broker, topology)
        await writer.start()
        await ops.start()

    @app.on_shutdown
    async def _stop() -> None:
        await ops.stop()
        await writer.stop()

    return app
