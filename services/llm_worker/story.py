"""The story writer: outlines and pages, written with Moonshot, one attempt a delivery.

A page is streamed: the illustration prompt comes first in the model's JSON, and the
picture is requested the moment it is complete, so drawing and writing overlap. Text
deltas go to the live exchange as they arrive (coalesced to ~20 frames a second);
the finished page goes to `gateway.results`.

A failed attempt is raised as what should happen next (policy.py decides, the
consumer in services.common settles): waited out, tried again, or given up.

It stays one module a little over 400 lines on purpose: the outline and the page
share one streaming loop and its state (the budget slot, the live offset, the picture
already asked for), and splitting them would pass that state between modules.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from faststream.rabbit import RabbitBroker
from openai import AsyncOpenAI
from pydantic import ValidationError

from services.common import contracts as c
from services.common import safety
from services.common.amqp import Link
from services.common.budget import connect, make_budget
from services.common.bus import BrokerUnavailable, LivePublisher, publish_work
from services.common.consumer import Delivery, GiveUp
from services.common.errors import reader_error
from services.common.metrics import PAGES, UPSTREAM_SECONDS
from services.common.topology import Topology
from services.llm_worker import prompts
from services.llm_worker.config import LlmSettings
from services.llm_worker.moonshot import (
    UNREACHABLE,
    LlmError,
    Usage,
    check_key,
    classify,
    make_client,
    stream_text,
)
from services.llm_worker.policy import after_failure
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


class Writer:
    def __init__(
        self, *, settings: LlmSettings, broker: RabbitBroker, link: Link, topology: Topology
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.topo = topology
        self.live = LivePublisher(link, topology)
        self.client: AsyncOpenAI | None = None
        self._key_check: tuple[float, str] | None = None
        # The Moonshot account's budget: calls in flight and calls per minute, shared by
        # every llm_worker through Redis when REDIS_URL is set, else this process's own.
        self.redis = connect(settings.redis_url)
        self.budget = make_budget(
            self.redis,
            prefix=settings.rabbitmq_prefix,
            name="moonshot",
            account=f"{settings.moonshot_base_url} {settings.moonshot_api_key.get_secret_value()}",
            concurrency=settings.moonshot_concurrency,
            per_minute=settings.moonshot_rpm,
        )

    async def start(self) -> None:
        self.client = make_client(self.settings)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def key_check(self) -> str:
        """Is the Moonshot key accepted? A cheap authenticated call, kept for a minute."""
        now = time.monotonic()
        if self._key_check is not None:
            at, verdict = self._key_check
            if now - at < (KEY_CHECK_EVERY if verdict == "ok" else KEY_RECHECK_FAILED):
                return verdict
        assert self.client is not None
        verdict = await check_key(self.client, self.settings)
        self._key_check = (now, verdict)
        return verdict

    async def _result(self, result: c.Contract, story_id: str, *, patient: bool = True) -> None:
        # Patient: a result holds Moonshot's answer, which a requeue would pay for again.
        headers = {"story_id": story_id}
        key = self.topo.results_key
        await publish_work(self.broker, self.topo, result, routing_key=key, headers=headers, patient=patient)

    async def _notice(self, notice: c.PageWaiting | c.PageResumed) -> None:
        """Tell the reader the page waits, or goes on: a courtesy that never holds up
        or loses the page itself (the retry is parked whether or not this arrives)."""
        try:
            await self._result(notice, notice.story_id, patient=False)
        except Exception:
            log.warning("%s not delivered", notice.kind, extra={"story_id": notice.story_id})

    async def _picture(self, task: c.ImageTask) -> None:
        headers = {"story_id": task.story_id}
        key = self.topo.image_key
        await publish_work(self.broker, self.topo, task, routing_key=key, headers=headers, patient=True)

    # ------------------------------------------------------------------ one delivery
    async def handle(self, task: c.OutlineTask | c.PageTask, delivery: Delivery) -> None:
        """One attempt at the task; a failure is raised as what should happen next."""
        page = task.page if isinstance(task, c.PageTask) else 0
        gentle = delivery.headers.get("x-gentle") == "1"
        # Waits for a temporary failure are not attempts: they are bounded by time.
        waits = int(delivery.headers.get("x-waits", 0) or 0)
        tries = delivery.retries + waits + 1
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
        except BrokerUnavailable:
            raise  # the broker's failure, not Moonshot's: requeued without spending an attempt
        except Exception as exc:  # every failure is classified; none escapes as a crash
            err = classify(exc)
        finally:
            await self._report(task.story_id, attempt.usage, retried=retried)
        budget = self.settings.moonshot_wait_out
        raise await after_failure(err, task=task, delivery=delivery, budget=budget, notify=self._notice)

    async def failed(self, task: c.OutlineTask | c.PageTask, given_up: GiveUp) -> c.PageFailed:
        """What the reader is told when the consumer gives the task up."""
        PAGES.labels(given_up.code).inc()
        error = reader_error(given_up.code)
        if given_up.code == "unsuitable_idea":
            error = c.ErrorInfo(code=given_up.code, message=safety.kind_refusal(task.brief.language))
        page = task.page if isinstance(task, c.PageTask) else 0
        return c.PageFailed(story_id=task.story_id, page=page, error=error, attempt=task.attempt)

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
            await self._result(report, story_id, patient=False)
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
                requested = await self._request_sheet(task, characters, prompts.lead_style(task, style))
        text = "".join(pieces)
        try:
            start, end = text.find("{"), text.rfind("}") + 1
            outline = c.Outline.model_validate(json.loads(text[start:end]))
        except (ValueError, ValidationError) as exc:
            raise LlmError("llm_bad_output", f"the outline was not usable: {exc}", True) from None
        outline = outline.model_copy(update={"style": prompts.lead_style(task, outline.style)})
        if not safety.check_all(prompts.outline_texts(outline), age=task.brief.age).ok:
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

        reader, requested = await self._stream_page(task, gentle=gentle, attempt=attempt)
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
        if not requested:  # the model put the scene last: draw it now
            await self._request_image(task, draft.illustration)
        await self._result(
            c.PageTextDone(
                story_id=task.story_id,
                page=task.page,
                text=draft.text,
                choices=[] if task.is_last else draft.choices[:3],
                image_prompt=prompts.image_prompt(task, prompts.scene(task, draft.illustration)),
                attempt=task.attempt,
                note=note,
                alt=draft.alt or None,
            ),
            task.story_id,
        )

    async def _stream_page(
        self, task: c.PageTask, *, gentle: bool, attempt: Attempt
    ) -> tuple[PageReader, bool]:
        """The page as it streams: its text to the reader, its picture asked for as soon as
        the scene is written; (what was read, whether the picture was asked for)."""
        reader = PageReader()
        requested = False
        pending, offset, flushed_at = "", 0, time.monotonic()
        async for piece in self._stream(prompts.page_messages(task, gentle=gentle), attempt):
            progress = reader.feed(piece)
            if progress.illustration and not requested:
                requested = True
                await self._request_image(task, progress.illustration)
            pending += progress.new_text
            if pending and time.monotonic() - flushed_at >= DELTA_EVERY:
                await self._delta(task, offset, pending, whole=reader.text)
                offset, pending, flushed_at = offset + len(pending), "", time.monotonic()
        if pending:
            await self._delta(task, offset, pending, whole=reader.text)
        return reader, requested

    async def _request_image(self, task: c.PageTask, illustration: str) -> None:
        """The page's picture, drawn while the text is still being written."""
        prompt = prompts.image_prompt(task, prompts.scene(task, illustration))
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

    async def _delta(self, task: c.PageTask, offset: int, text: str, *, whole: str) -> None:
        """Send the page's new text, once the page so far (`whole`) is checked: the check
        is made where text leaves for the reader, not on every token (a page's whole text
        checked on each of its ~100 tokens was most of this worker's CPU)."""
        if not safety.check(whole, age=task.brief.age).ok:
            # Stop before the word reaches the reader; the page is written again.
            raise LlmError("llm_unsafe_output", "the page was not fit for the reader's age", True)
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
        async with self.budget.slot():
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
                outcome = "broker" if isinstance(exc, BrokerUnavailable) else classify(exc).code
                raise
            finally:
                UPSTREAM_SECONDS.labels("moonshot", outcome).observe(time.monotonic() - started)
                await pieces.aclose()
