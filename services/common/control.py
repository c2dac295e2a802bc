"""Operator commands over RabbitMQ: new jimeng session ids reach every image worker.

The command goes to the control exchange (fan-out): each running image worker has
its own queue there and applies it within moments; a copy stays in a queue of
length one, so a worker started later (or restarted) reads the latest command
before it takes any work, unless the workers' own JIMENG_SESSION_ID changed after
the command was sent: the newest intent of the operator wins (environment_since).
"""

from __future__ import annotations

import contextlib
import hashlib
import time

import aio_pika
from aio_pika.abc import AbstractChannel
from pydantic import BaseModel

from services.common.amqp import Link, declare_topology
from services.common.contracts import JimengSessions, SessionsEnvironment
from services.common.topology import Topology


async def send_sessions(link: Link, topo: Topology, command: JimengSessions) -> None:
    await declare_topology(link, topo)
    async with link.session() as channel:
        exchange = await channel.get_exchange(topo.control_exchange.name, ensure=False)
        await exchange.publish(_persistent(command), routing_key="")


async def latest_sessions(link: Link, topo: Topology) -> JimengSessions | None:
    """The last command sent, left in place for the next reader."""
    async with link.session() as channel:
        body = await peek(channel, topo.sessions_queue.name)
    return None if body is None else JimengSessions.model_validate_json(body)


async def peek(channel: AbstractChannel, queue: str) -> bytes | None:
    """The message at the head of a kept-record queue, read and put back for the next
    reader (the queue holds one: the latest command or environment)."""
    declared = await channel.declare_queue(queue, passive=True)
    message = await declared.get(no_ack=False, fail=False)
    if message is None:
        return None
    await message.reject(requeue=True)
    return message.body


KEPT_FINGERPRINTS = 20


def fingerprint(ids: list[str]) -> str:
    """Names a set of session ids without revealing them."""
    joined = ",".join(sorted(i.strip() for i in ids if i.strip()))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


async def environment_since(link: Link, topo: Topology, ids: list[str]) -> float:
    """Since when image workers start with these JIMENG_SESSION_ID ids (0: as long as we know).

    The first worker that starts with a changed environment records the change; a
    kept `jimeng-session` command sent before that moment is older than the
    operator's latest intent and is not applied.
    """
    mine = fingerprint(ids)
    async with link.session() as channel:
        queue = await channel.declare_queue(topo.sessions_env_queue.name, passive=True)
        message = await queue.get(no_ack=False, fail=False)
        seen: SessionsEnvironment | None = None
        if message is not None:
            await message.reject(requeue=True)
            with contextlib.suppress(ValueError):
                seen = SessionsEnvironment.model_validate_json(message.body)
        known = dict(seen.seen) if seen is not None else {}
        if seen is not None:
            known.setdefault(seen.fingerprint, seen.since)
        if mine in known and seen is not None and seen.fingerprint == mine:
            return known[mine]
        since = known.get(mine, time.time() if known else 0.0)
        known[mine] = since
        recent = dict(sorted(known.items(), key=lambda kv: kv[1])[-KEPT_FINGERPRINTS:])
        record = SessionsEnvironment(fingerprint=mine, since=since, seen=recent)
        await channel.default_exchange.publish(_persistent(record), routing_key=topo.sessions_env_queue.name)
        return record.since


def _persistent(record: BaseModel) -> aio_pika.Message:
    return aio_pika.Message(
        record.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def sent_by(command: JimengSessions) -> str:
    """Where ids came from, for logs, /readyz and the doctor: "`jimeng-session set` at ..."."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(command.at)) if command.at else "an earlier time"
    return f"`jimeng-session {command.mode}` at {when}"
