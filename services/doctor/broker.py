"""RabbitMQ: reachable, every queue of the topology declared, work queues consumed,
no dead letters waiting; and the jimeng session command kept there, if any.

Queues are looked at with passive declares (which change nothing); a missing queue
closes its channel, so each queue gets a channel of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection
from pydantic import BaseModel

from services.common.contracts import JimengSessions, SessionsEnvironment
from services.common.control import peek
from services.common.logs import register_secrets
from services.common.settings import mask
from services.common.topology import Topology
from services.doctor.environment import Environment, ServiceName, redact_url
from services.doctor.report import Row

M = TypeVar("M", bound=BaseModel)

# Who should be consuming each work queue.
CONSUMERS: dict[str, ServiceName] = {
    Topology.llm_key: "llm_worker",
    Topology.image_key: "image_worker",
    Topology.results_key: "gateway",
}

START_ONCE = (
    "start the services once (gateway, llm_worker, image_worker): each declares the whole topology at start"
)


@dataclass
class QueueState:
    name: str
    messages: int
    consumers: int


@dataclass
class BrokerReport:
    rows: list[Row] = field(default_factory=list)
    kept: JimengSessions | None = None
    # Which JIMENG_SESSION_ID the image workers last started with, and since when.
    environment: SessionsEnvironment | None = None


async def connect(url: str, *, wait: float) -> AbstractConnection:
    return await aio_pika.connect(url, timeout=wait, client_properties={"connection_name": "doctor"})


async def check_broker(env: Environment, *, wait: float) -> BrokerReport:
    if env.common is None:
        return BrokerReport([Row.skip("broker", "RABBITMQ_URL or RABBITMQ_PREFIX is invalid (see config)")])
    url, topo = env.common.rabbitmq_url, Topology(env.common.rabbitmq_prefix)
    try:
        connection = await connect(url, wait=wait)
    except aiormq.exceptions.ProbableAuthenticationError:
        return BrokerReport([_refused(url, "the user or password was refused")])
    except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
        return BrokerReport([_unreachable(url, exc)])
    async with connection:
        report = BrokerReport([Row.ok("broker", f"connected to {redact_url(url)} (prefix {topo.prefix})")])
        states = {name: await queue_state(connection, name) for name in topo.all_queue_names}
        report.rows += queue_rows(env, topo, states)
        report.kept = await kept_sessions(connection, topo)
        report.environment = await sessions_environment(connection, topo)
    return report


async def queue_state(connection: AbstractConnection, name: str) -> QueueState | None:
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()
    result = queue.declaration_result
    return QueueState(name, int(result.message_count or 0), int(result.consumer_count or 0))


async def sessions_environment(connection: AbstractConnection, topo: Topology) -> SessionsEnvironment | None:
    """The record of the image workers' JIMENG_SESSION_ID, read and put back."""
    body = await _peek(connection, topo.sessions_env_queue.name)
    return None if body is None else _read(SessionsEnvironment, body)


async def kept_sessions(connection: AbstractConnection, topo: Topology) -> JimengSessions | None:
    """The latest session command, read and put back (the workers read it at start)."""
    body = await _peek(connection, topo.sessions_queue.name)
    command = None if body is None else _read(JimengSessions, body)
    if command is not None:
        register_secrets(command.ids)
    return command


async def _peek(connection: AbstractConnection, queue: str) -> bytes | None:
    """A kept record, or None when its queue is not there (nothing was ever sent)."""
    channel = await connection.channel()
    try:
        return await peek(channel, queue)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


def _read(model: type[M], body: bytes) -> M | None:
    try:
        return model.model_validate_json(body)
    except ValueError:  # a record written by another version: as good as none
        return None


def queue_rows(env: Environment, topo: Topology, states: dict[str, QueueState | None]) -> list[Row]:
    if all(state is None for state in states.values()):
        return [
            Row.fail(
                "queues",
                f"none of the {len(states)} queues with prefix {topo.prefix!r} exists",
                f"{START_ONCE}; if they do run, their RABBITMQ_PREFIX is not {topo.prefix!r}",
            )
        ]
    retry = {q.name for q in topo.retry_queues}
    rows = [_queue_row(env, topo, name, state) for name, state in states.items() if name not in retry]
    rows.append(_retry_row(topo, {name: states[name] for name in states if name in retry}))
    return rows


def _retry_row(topo: Topology, states: dict[str, QueueState | None]) -> Row:
    """The retry queues (no consumers by design: a message waits out its TTL) as one row."""
    missing = [name for name, state in states.items() if state is None]
    if missing:
        short = ", ".join(m.removeprefix(topo.prefix + ".") for m in missing)
        return Row.fail("queue retry.*", f"not declared: {short}", START_ONCE)
    waiting = {n: s.messages for n, s in states.items() if s is not None and s.messages}
    shown = ", ".join(f"{n.removeprefix(topo.prefix + '.retry.')} {c}" for n, c in waiting.items())
    return Row.ok(
        "queue retry.*",
        f"{len(states)} declared; {sum(waiting.values())} waiting" + (f" ({shown})" if shown else ""),
    )


def _queue_row(env: Environment, topo: Topology, name: str, state: QueueState | None) -> Row:
    check = f"queue {name.removeprefix(topo.prefix + '.')}"
    if state is None:
        return Row.fail(check, f"{name} is not declared", START_ONCE)
    seen = f"{state.messages} waiting, {state.consumers} consumer(s)"
    key = name.removeprefix(topo.prefix + ".")
    if key in CONSUMERS and state.consumers == 0 and env.has(CONSUMERS[key]):
        return _unconsumed(check, state, CONSUMERS[key])
    if name == topo.dead_queue.name and state.messages:
        return _dead_letters(check, name, state)
    if name == topo.sessions_queue.name and state.messages:
        return Row.ok(check, f"{seen}: an operator's session command is kept (jimeng-session show)")
    return Row.ok(check, seen)


def _unconsumed(check: str, state: QueueState, service: ServiceName) -> Row:
    return Row.fail(
        check,
        f"no consumer: no {service} takes this work ({state.messages} waiting)",
        f"start the {service} (`docker compose up -d {service}` or `python -m services.{service}`); "
        f"if it is running, it refused to start or lost the broker: `docker compose logs {service}` and "
        f"`docker compose exec {service} python -m services.doctor --service {service}`",
    )


def _dead_letters(check: str, name: str, state: QueueState) -> Row:
    return Row.fail(
        check,
        f"{state.messages} dead letter(s) in {name}: work that failed for good",
        "see why (header x-reason): `python -m services.doctor dead`, or the management UI "
        f"(http://<broker>:15672 > Queues > {name} > Get messages); fix the cause, then purge: "
        f"`docker compose exec rabbitmq rabbitmqctl purge_queue {name}`",
    )


def _refused(url: str, why: str) -> Row:
    return Row.fail(
        "broker",
        f"{redact_url(url)}: {why}",
        "put the broker's user and password in RABBITMQ_URL (amqp://user:password@host:5672/vhost)",
    )


def _unreachable(url: str, exc: BaseException) -> Row:
    return Row.fail(
        "broker",
        f"cannot connect to {redact_url(url)}: {type(exc).__name__}: {exc}".rstrip(": "),
        "start RabbitMQ (`docker compose up -d rabbitmq`) or fix RABBITMQ_URL; inside a container "
        "the broker is amqp://guest:guest@rabbitmq:5672/, not 127.0.0.1",
    )


def describe_command(command: JimengSessions) -> str:
    return f"{command.mode} {', '.join(mask(i) for i in command.ids) or '(no ids)'}"
