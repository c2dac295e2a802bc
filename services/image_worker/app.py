"""Builds the illustrator: pictures from `image.tasks`, drawn by a provider, kept in MEDIA_DIR.

The provider (provider.py) is jimeng-api or Volcengine Ark, chosen by IMAGE_PROVIDER;
nothing here depends on which one draws.

The picture is downloaded at once and written under MEDIA_DIR (shared with the
gateway, which serves it); only then is the result published and the task acked.
One task's way from delivery to result is in illustrator.py, its drawing steps in
painter.py; this module wires them to the broker, the control queue and the ops port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from services.common import contracts as c
from services.common.amqp import Link, declare_topology
from services.common.bus import make_broker
from services.common.consumer import Retries, consume, parser
from services.common.control import latest_sessions, sent_by
from services.common.logs import register_secrets
from services.common.ops import Checks, OpsServer
from services.common.topology import Topology
from services.image_worker.config import ImageSettings
from services.image_worker.illustrator import RETRY_CAP, Illustrator
from services.image_worker.providers import adopt_kept_sessions

log = logging.getLogger(__name__)


def create_app(settings: ImageSettings) -> FastStream:
    register_secrets(settings.secrets())
    topology = Topology(settings.rabbitmq_prefix)
    broker = make_broker(settings.rabbitmq_url, service="image_worker")
    link = Link(settings.rabbitmq_url, name="image_worker")
    illustrator = Illustrator(settings=settings, broker=broker, topology=topology)
    replica = f"image-{socket.gethostname()}-{os.getpid()}"

    async def checks() -> Checks:
        provider = illustrator.painter.provider
        assert provider is not None
        broker_ok = "ok" if link.connected else "unreachable: check RABBITMQ_URL"
        media_ok = await asyncio.to_thread(illustrator.media.check, write=False)
        return {"broker": broker_ok, "media": media_ok, **await provider.readiness()}

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

    follow_kept_sessions = _session_control(
        broker, topology, link=link, illustrator=illustrator, settings=settings, replica=replica
    )

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


def _session_control(
    broker: RabbitBroker,
    topology: Topology,
    *,
    link: Link,
    illustrator: Illustrator,
    settings: ImageSettings,
    replica: str,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Applies an operator's jimeng session rotation the moment it is sent; returns the
    loop that catches up on one sent while this worker was away."""

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

    return follow_kept_sessions
