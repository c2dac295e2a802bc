"""Builds the story writer's process: `llm.tasks` in, Moonshot's pages out (story.py).

One delivery is one upstream attempt. A failed attempt that may succeed later is
parked in a retry queue (no consumer waits for it); one that cannot, or has used
its attempts, becomes a `PageFailed` the reader sees, once, and the exhausted
message is kept in the dead-letter queue with its reason. A rate limit or an outage
is waited out for up to `MOONSHOT_WAIT_OUT` seconds (see policy.py), and the reader
is told the page waits, and why (`PageWaiting`), until Moonshot answers again
(`PageResumed`). A task is acknowledged only after its result is confirmed by the
broker; a broker that does not confirm never costs the task an attempt.
"""

from __future__ import annotations

import logging

from faststream import FastStream

from services.common import contracts as c
from services.common.amqp import Link, declare_topology
from services.common.bus import make_broker
from services.common.consumer import Retries, consume, parser
from services.common.logs import register_secrets
from services.common.ops import Checks, OpsServer
from services.common.topology import Topology
from services.llm_worker.config import LlmSettings
from services.llm_worker.story import Writer


def create_app(settings: LlmSettings) -> FastStream:
    register_secrets([settings.moonshot_api_key.get_secret_value()])
    topology = Topology(settings.rabbitmq_prefix)
    broker = make_broker(settings.rabbitmq_url, service="llm_worker")
    link = Link(settings.rabbitmq_url, name="llm_worker")
    writer = Writer(settings=settings, broker=broker, link=link, topology=topology)

    async def checks() -> Checks:
        return {
            "broker": "ok" if link.connected else "unreachable: check RABBITMQ_URL",
            "moonshot": await writer.key_check(),
        }

    ops = OpsServer(host=settings.ops_host, port=settings.llm_ops_port, checks=checks)
    retries = Retries(settings.llm_max_attempts, base=2.0, cap=60.0)
    consume(
        broker,
        topology,
        topology.llm_queue,
        writer.handle,
        parse=parser(c.llm_task_adapter),
        prefetch=settings.llm_concurrency,
        retries=retries,
        report=writer.failed,
    )
    app = FastStream(broker, logger=logging.getLogger("faststream"))

    @app.on_startup
    async def _start() -> None:
        await link.connect()
        await declare_topology(link, topology)
        await writer.start()
        await ops.start()

    @app.on_shutdown
    async def _stop() -> None:
        await ops.stop()
        await writer.stop()
        await link.close()

    return app
