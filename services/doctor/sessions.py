"""`jimeng-session set|add|remove|show`: rotate the image workers' session ids at once.

The command goes through the broker (services.common.control): every running
image worker applies it within moments, and the last one stays in the broker for
workers that start later. No restart, no edit of every container's environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import aiormq

from services.common.amqp import Link
from services.common.contracts import JimengSessions
from services.common.control import latest_sessions, send_sessions
from services.common.logs import register_secrets
from services.common.settings import ServiceSettings, mask
from services.common.topology import Topology
from services.doctor import jimeng
from services.doctor.broker import describe_command
from services.doctor.environment import redact_url
from services.doctor.report import Status

Mode = Literal["set", "add", "remove"]


def split_ids(values: list[str]) -> list[str]:
    """`a,b c` -> [a, b, c]: ids may be given comma-separated, space-separated or both."""
    found = [part.strip() for value in values for part in value.split(",")]
    return list(dict.fromkeys(i for i in found if i))


async def send(
    common: ServiceSettings, mode: Mode, ids: list[str], *, jimeng_url: str | None, wait: float
) -> int:
    register_secrets(ids)
    command = JimengSessions(mode=mode, ids=ids, at=time.time())
    topo = Topology(common.rabbitmq_prefix)
    async with connected(common.rabbitmq_url, wait=wait) as link:
        await send_sessions(link, topo, command)
    print(f"sent to the image workers: {describe_command(command)}")
    print(f"(kept in {topo.sessions_queue.name} for image workers that start later)")
    if mode != "remove":
        await _check_sent(ids, jimeng_url, wait=wait)
    return 0


async def show(common: ServiceSettings, *, wait: float) -> int:
    topo = Topology(common.rabbitmq_prefix)
    async with connected(common.rabbitmq_url, wait=wait) as link:
        try:
            kept = await latest_sessions(link, topo)
        except aiormq.exceptions.ChannelNotFoundEntity:
            print(f"{topo.sessions_queue.name} does not exist: start the services once (they declare it)")
            return 1
    if kept is None:
        print("no session command kept: the image workers use JIMENG_SESSION_ID from their environment")
        return 0
    register_secrets(kept.ids)
    print(f"latest command: {describe_command(kept)}")
    if kept.mode != "set":
        print("(an image worker that starts applies it to the JIMENG_SESSION_ID in its environment)")
    return 0


async def _check_sent(ids: list[str], url: str | None, *, wait: float) -> None:
    if not url:
        print("JIMENG_API_URL is not set here: the ids were not checked")
        return
    async with jimeng.client(wait) as http:
        ping = await jimeng.check_ping(http, url)
        if ping.status is not Status.OK:
            print(f"could not check the ids: {ping.detail}")
            return
        alive = await jimeng.check_ids(http, url, ids)
    for sid, answer in alive.items():
        if answer.expired:
            print(f"  WARNING: {mask(sid)} is expired or invalid; {jimeng.ROTATE}")
        elif answer.credits is None:
            print(f"  WARNING: {mask(sid)} not checked: {answer.unreachable}; {jimeng.OUTAGE}")
        elif answer.credits <= 0:
            print(f"  WARNING: {mask(sid)} is live but has no credits; {jimeng.NO_CREDITS}")
        else:
            print(f"  {mask(sid)} can draw ({answer.credits} credits)")


@asynccontextmanager
async def connected(url: str, *, wait: float) -> AsyncIterator[Link]:
    """A connection for one command, closed afterwards; connecting is bounded in time."""
    link = Link(url, name="doctor")
    try:
        try:
            async with asyncio.timeout(wait):
                await link.connect()
        except Exception as exc:
            raise BrokerUnavailable(f"cannot connect to {redact_url(url)}: {type(exc).__name__}") from None
        yield link
    finally:
        await link.close()


class BrokerUnavailable(Exception):
    """The broker cannot be reached; the message says where it was looked for."""
