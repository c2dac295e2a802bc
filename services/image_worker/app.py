"""Builds the illustrator: pictures from `image.tasks`, drawn by jimeng-api, kept in MEDIA_DIR.

The picture is downloaded at once and written under MEDIA_DIR (shared with the
gateway, which serves it); only then is the result published and the task acked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
from pathlib import Path

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from services.common import contracts as c
from services.common.bus import (
    Delivery,
    backoff,
    declare_topology,
    make_broker,
    parse,
    publish_work,
    settle,
)
from services.common.errors import reader_error
from services.common.logs import register_secrets
from services.common.topology import Topology
from services.image_worker.config import ImageSettings
from services.image_worker.jimeng import ImageError, Jimeng, SessionPool

log = logging.getLogger(__name__)

SNIFF = {b"RIFF": ".webp", b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg"}


def extension(data: bytes, content_type: str) -> str:
    for magic, ext in SNIFF.items():
        if data.startswith(magic):
            return ext
    raise ImageError("image_failed", f"the download is not a picture ({content_type or 'no type'})", True)


def store_file(media_dir: Path, story_id: str, page: int, attempt: int, data: bytes, ext: str) -> str:
    """Write atomically under an unguessable name; return the path relative to MEDIA_DIR."""
    folder = media_dir / story_id
    folder.mkdir(parents=True, exist_ok=True)
    name = f"p{page}-a{attempt}-{secrets.token_urlsafe(12)}{ext}"
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".part-", delete=False) as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, folder / name)
    os.chmod(folder / name, 0o644)
    return f"{story_id}/{name}"


class Illustrator:
    def __init__(self, *, settings: ImageSettings, broker: RabbitBroker, topology: Topology) -> None:
        self.settings = settings
        self.broker = broker
        self.topo = topology
        self.sessions = SessionPool(settings.session_ids)
        self.jimeng: Jimeng | None = None

    async def start(self) -> None:
        self.settings.media_dir.mkdir(parents=True, exist_ok=True)
        self.jimeng = Jimeng(
            base_url=self.settings.jimeng_api_url,
            sessions=self.sessions,
            model=self.settings.jimeng_model,
            timeout=self.settings.jimeng_timeout,
            max_bytes=self.settings.image_max_bytes,
        )

    async def stop(self) -> None:
        if self.jimeng is not None:
            await self.jimeng.close()

    async def handle(self, task: c.ImageTask, delivery: Delivery) -> None:
        extra = {"story_id": task.story_id, "page": task.page, "attempt": task.attempt}
        try:
            path = await self.draw(task)
        except ImageError as err:
            extra["code"] = err.code
            if err.retryable and delivery.retries + 1 < self.settings.image_max_attempts:
                delay = backoff(delivery.retries, base=10, cap=180)
                log.warning("picture attempt failed (%s); retrying in %.0fs", err.message, delay, extra=extra)
                await delivery.retry_later(delay)
                return
            log.error("picture failed: %s", err.message, extra=extra)
            failed = c.ImageFailed(
                story_id=task.story_id, page=task.page, attempt=task.attempt, error=reader_error(err.code)
            )
            await self._result(failed)
            if err.retryable:
                attempts = delivery.retries + 1
                await delivery.dead_letter(f"{err.code}: {err.message} ({attempts} attempts)", code=err.code)
            return
        log.info("picture drawn and stored", extra=extra)
        await self._result(
            c.ImageReady(story_id=task.story_id, page=task.page, media_path=path, attempt=task.attempt)
        )

    async def draw(self, task: c.ImageTask) -> str:
        """One attempt: draw, download at once, store. A refusal by policy is tried once softened."""
        assert self.jimeng is not None
        prompt = task.prompt
        for softened in (False, True):
            try:
                url = await self.jimeng.generate(
                    prompt=prompt,
                    ratio=task.ratio or self.settings.jimeng_ratio,
                    resolution=self.settings.jimeng_resolution,
                )
            except ImageError as err:
                if err.policy and not softened:
                    log.warning(
                        "picture refused by policy; trying a softened prompt",
                        extra={"story_id": task.story_id, "page": task.page},
                    )
                    prompt = soften(prompt)
                    continue
                raise
            data, ctype = await self.jimeng.fetch(url)
            ext = extension(data, ctype)
            return await asyncio.to_thread(
                store_file, self.settings.media_dir, task.story_id, task.page, task.attempt, data, ext
            )
        raise ImageError("image_content_policy", "the picture was refused twice")  # pragma: no cover

    async def _result(self, result: c.ImageReady | c.ImageFailed) -> None:
        await publish_work(
            self.broker,
            self.topo,
            result,
            routing_key=self.topo.results_key,
            headers={"story_id": result.story_id},
        )


def soften(prompt: str) -> str:
    return (
        "A gentle, cheerful, completely child-safe picture book illustration. "
        + prompt
        + " Calm mood, soft colours, nothing frightening."
    )


def create_app(settings: ImageSettings) -> FastStream:
    register_secrets(settings.session_ids)
    topology = Topology(settings.rabbitmq_prefix)
    broker = make_broker(settings.rabbitmq_url)
    illustrator = Illustrator(settings=settings, broker=broker, topology=topology)

    @broker.subscriber(
        topology.image_queue,
        topology.work_exchange,
        channel=Channel(prefetch_count=settings.image_concurrency),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_task(msg: RabbitMessage) -> None:
        delivery = Delivery(broker, topology, msg, key=topology.image_key)

        async def work() -> None:
            await illustrator.handle(parse(c.image_task_adapter, msg.body), delivery)

        await settle(delivery, work)

    app = FastStream(broker, logger=logging.getLogger("faststream"))

    @app.on_startup
    async def _start() -> None:
        await broker.connect()
        await declare_topology(broker, topology)
        await illustrator.start()

    @app.on_shutdown
    async def _stop() -> None:
        await illustrator.stop()

    return app
