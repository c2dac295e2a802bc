"""Builds the story writer: outlines and pages from `llm.tasks`, written with Moonshot.

A page is streamed: the illustration prompt comes first in the model's JSON, and the
picture is requested the moment it is complete, so drawing and writing overlap. Text
deltas go to the live exchange as they arrive (coalesced to a few per second per
page); the finished page goes to `gateway.results`. A task is acknowledged only after
its result is confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from openai import AsyncOpenAI
from pydantic import ValidationError

from services.common import contracts as c
from services.common.bus import declare_topology, make_broker, parse, publish_work, settle
from services.common.logs import register_secrets
from services.common.topology import Topology, live_routing_key
from services.llm_worker import prompts
from services.llm_worker.config import LlmSettings
from services.llm_worker.moonshot import LlmError, classify, make_client, stream_text
from services.llm_worker.writer import PageReader

log = logging.getLogger(__name__)
T = TypeVar("T")

DELTA_EVERY = 0.05  # seconds: coalesce tokens into at most ~20 frames a second


class Writer:
    def __init__(self, *, settings: LlmSettings, broker: RabbitBroker, topology: Topology) -> None:
        self.settings = settings
        self.broker = broker
        self.topo = topology
        self.client: AsyncOpenAI | None = None

    async def start(self) -> None:
        self.client = make_client(self.settings)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    # ------------------------------------------------------------------ results
    async def _result(self, result: c.Contract, story_id: str) -> None:
        await publish_work(
            self.broker,
            self.topo,
            result,
            routing_key=self.topo.results_key,
            headers={"story_id": story_id},
        )

    async def _attempts(self, story_id: str, page: int, run: Callable[[bool], Awaitable[T]]) -> T:
        """Run one upstream attempt after another until one succeeds or retrying is pointless."""
        gentle = False
        filtered_once = False
        for attempt in range(1, self.settings.llm_max_attempts + 1):
            try:
                return await run(gentle)
            except Exception as exc:  # classified below; nothing escapes unclassified
                err = classify(exc)
            extra = {"story_id": story_id, "page": page, "code": err.code, "attempt": attempt}
            if err.code == "llm_content_filter" and not filtered_once:
                # One more try with a gentler prompt, then give up clearly.
                filtered_once, gentle = True, True
                log.warning("content filter; retrying gently", extra=extra)
                continue
            if not err.retryable or attempt == self.settings.llm_max_attempts:
                log.error("page attempt failed for good: %s", err.message, extra=extra)
                raise err
            wait = err.retry_after if err.retry_after is not None else min(30.0, 2 ** (attempt - 1))
            wait *= random.uniform(1.0, 1.25)
            log.warning("attempt failed (%s); retrying in %.1fs", err.message, wait, extra=extra)
            await asyncio.sleep(wait)
        raise LlmError("llm_failed", "no attempt left")  # pragma: no cover

    # ------------------------------------------------------------------ outline
    async def write_outline(self, task: c.OutlineTask) -> None:
        async def run(gentle: bool) -> c.Outline:
            messages = prompts.outline_messages(task)
            if gentle:
                messages[0]["content"] += "\nKeep everything especially gentle and calm."
            usage: dict[str, int] = {}
            text = "".join([p async for p in self._stream(messages, usage)])
            try:
                start, end = text.find("{"), text.rfind("}") + 1
                outline = c.Outline.model_validate(json.loads(text[start:end]))
            except (ValueError, ValidationError) as exc:
                raise LlmError("llm_bad_output", f"the outline was not usable: {exc}", True) from None
            if not outline.style.strip():
                outline = outline.model_copy(update={"style": task.brief.style})
            return outline

        try:
            outline = await self._attempts(task.story_id, 0, run)
        except LlmError as err:
            await self._result(
                c.PageFailed(story_id=task.story_id, page=0, error=_reader_error(err), attempt=task.attempt),
                task.story_id,
            )
            return
        # The reader's chosen style leads; the model's wording of it follows.
        if task.brief.style.lower() not in outline.style.lower():
            outline = outline.model_copy(update={"style": f"{task.brief.style}, {outline.style}"})
        await self._result(
            c.OutlineReady(story_id=task.story_id, outline=outline, attempt=task.attempt), task.story_id
        )

    # ------------------------------------------------------------------ page
    async def write_page(self, task: c.PageTask) -> None:
        requested = False

        async def request_image(illustration: str) -> None:
            nonlocal requested
            if requested:
                return
            requested = True
            prompt = prompts.image_prompt(task, illustration)
            await self._result(
                c.ImageRequested(
                    story_id=task.story_id, page=task.page, prompt=prompt, attempt=task.image_attempt
                ),
                task.story_id,
            )
            await publish_work(
                self.broker,
                self.topo,
                c.ImageTask(
                    story_id=task.story_id, page=task.page, prompt=prompt, attempt=task.image_attempt
                ),
                routing_key=self.topo.image_key,
                headers={"story_id": task.story_id},
            )
            log.info(
                "picture requested while the text is written",
                extra={"story_id": task.story_id, "page": task.page},
            )

        async def run(gentle: bool) -> c.PageDraft:
            reader = PageReader()
            usage: dict[str, int] = {}
            pending, offset, flushed_at = "", 0, time.monotonic()
            async for piece in self._stream(prompts.page_messages(task, gentle=gentle), usage):
                progress = reader.feed(piece)
                if progress.illustration:
                    await request_image(progress.illustration)
                pending += progress.new_text
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
            log.info("page written", extra={"story_id": task.story_id, "page": task.page, "usage": usage})
            return draft

        try:
            draft = await self._attempts(task.story_id, task.page, run)
        except LlmError as err:
            await self._result(
                c.PageFailed(
                    story_id=task.story_id, page=task.page, error=_reader_error(err), attempt=task.attempt
                ),
                task.story_id,
            )
            return
        await request_image(draft.illustration)  # the model put it last: draw it now
        await self._result(
            c.PageTextDone(
                story_id=task.story_id,
                page=task.page,
                text=draft.text,
                choices=[] if task.is_last else draft.choices[:3],
                image_prompt=prompts.image_prompt(task, draft.illustration),
                attempt=task.attempt,
            ),
            task.story_id,
        )

    async def _delta(self, task: c.PageTask, offset: int, text: str) -> None:
        delta = c.TextDelta(
            story_id=task.story_id, page=task.page, attempt=task.attempt, offset=offset, delta=text
        )
        # Deltas are a courtesy, not a record: not persisted, never block the page.
        try:
            await self.broker.publish(
                delta,
                exchange=self.topo.live_exchange,
                routing_key=live_routing_key(task.story_id),
                mandatory=False,
            )
        except Exception:
            log.warning("a text delta was not delivered", extra={"story_id": task.story_id})

    async def _stream(self, messages: list[dict[str, str]], usage: dict[str, int]) -> AsyncIterator[str]:
        """Content pieces of one completion, failing on a stall or the overall timeout."""
        assert self.client is not None
        deadline = time.monotonic() + self.settings.llm_timeout
        pieces = stream_text(self.client, self.settings, messages, usage)
        try:
            while True:
                left = min(self.settings.llm_stall_timeout, deadline - time.monotonic())
                if left <= 0:
                    raise LlmError("llm_unavailable", "Moonshot took too long for this page.", True)
                try:
                    async with asyncio.timeout(left):
                        piece = await pieces.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise LlmError("llm_unavailable", "Moonshot stopped sending text.", True) from None
                yield piece
        finally:
            await pieces.aclose()


def _reader_error(err: LlmError) -> c.ErrorInfo:
    """What the reader is told; the operator's detail stays in the log."""
    messages = {
        "llm_content_filter": "This idea could not be written into a story. Try a different idea.",
        "llm_auth": "The storyteller is not set up correctly. Please tell the person who runs it.",
        "llm_quota": "The storyteller has run out of credit. Please tell the person who runs it.",
        "llm_model": "The storyteller is not set up correctly. Please tell the person who runs it.",
        "llm_rate_limited": "The storyteller is very busy. Tap retry in a minute.",
        "llm_unavailable": "The storyteller could not be reached. Tap retry in a minute.",
        "llm_bad_output": "The storyteller got muddled writing this page. Tap retry.",
    }
    return c.ErrorInfo(
        code=err.code, message=messages.get(err.code, "This page could not be written. Tap retry.")
    )


def create_app(settings: LlmSettings) -> FastStream:
    register_secrets([settings.moonshot_api_key.get_secret_value()])
    topology = Topology(settings.rabbitmq_prefix)
    broker = make_broker(settings.rabbitmq_url)
    writer = Writer(settings=settings, broker=broker, topology=topology)

    @broker.subscriber(
        topology.llm_queue,
        topology.work_exchange,
        channel=Channel(prefetch_count=settings.llm_concurrency),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_task(msg: RabbitMessage) -> None:
        async def work() -> None:
            task = parse(c.llm_task_adapter, msg.body)
            if isinstance(task, c.OutlineTask):
                await writer.write_outline(task)
            else:
                await writer.write_page(task)

        await settle(msg, work)

    app = FastStream(broker, logger=logging.getLogger("faststream"))

    @app.on_startup
    async def _start() -> None:
        await broker.connect()
        await declare_topology(broker, topology)
        await writer.start()

    @app.on_shutdown
    async def _stop() -> None:
        await writer.stop()

    return app
