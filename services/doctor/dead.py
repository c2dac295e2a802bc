"""`dead [--limit N]`: what is in the dead-letter queue, and why, without removing it.

Messages are fetched unacknowledged on one channel and all put back at the end (a
requeued message returns to its original place in the queue), so looking changes
nothing but the `redelivered` flag.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractIncomingMessage

from services.common.logs import scrub
from services.common.settings import ServiceSettings
from services.common.topology import Topology
from services.doctor.broker import connect


@dataclass(frozen=True)
class DeadLetter:
    source: str
    code: str
    story_id: str
    page: str
    reason: str


async def read_dead(common: ServiceSettings, *, limit: int, wait: float) -> tuple[int, list[DeadLetter]]:
    """(messages in the queue, up to `limit` of them); raises ChannelNotFoundEntity if it is missing."""
    name = Topology(common.rabbitmq_prefix).dead_queue.name
    connection = await connect(common.rabbitmq_url, wait=wait)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        total = int(queue.declaration_result.message_count or 0)
        held: list[AbstractIncomingMessage] = []
        try:
            while len(held) < limit:
                message = await queue.get(no_ack=False, fail=False, timeout=wait)
                if message is None:
                    break
                held.append(message)
        finally:
            for message in held:
                await message.nack(requeue=True)
    return total, [describe(m) for m in held]


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = {k: _text(v) for k, v in (message.headers or {}).items()}
    body = _body(message.body)
    death = _first_death(message.headers or {})
    return DeadLetter(
        source=headers.get("x-source") or death.get("queue", "?"),
        code=headers.get("x-error-code") or death.get("reason", "?"),
        story_id=headers.get("story_id") or str(body.get("story_id", "?")),
        page=str(body.get("page", "")),
        reason=scrub(headers.get("x-reason") or _death_reason(death)),
    )


def _first_death(headers: dict[str, Any]) -> dict[str, str]:
    """The broker's own dead-lettering (e.g. the delivery limit) is told in `x-death`."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return {k: _text(v) for k, v in deaths[0].items()}
    return {}


def _death_reason(death: dict[str, str]) -> str:
    if not death:
        return "no reason recorded"
    if death.get("reason") == "delivery_limit":
        return (
            f"delivered too often from {death.get('queue', '?')}: it kept failing (or killing) its consumer"
        )
    return f"{death.get('reason', '?')} in {death.get('queue', '?')}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def as_table(name: str, total: int, letters: list[DeadLetter]) -> str:
    if not letters:
        return f"{name} is empty: no dead letters"
    cols = ("source", "code", "story_id", "page")
    widths = {c: max(len(c), *(len(getattr(d, c)) for d in letters)) for c in cols}
    head = "  ".join(f"{c.upper():<{widths[c]}}" for c in cols) + "  REASON"
    lines = [f"{name}: {total} message(s), showing {len(letters)} (left in place)", "", head]
    for d in letters:
        lines.append("  ".join(f"{getattr(d, c):<{widths[c]}}" for c in cols) + f"  {d.reason}")
    lines += [
        "",
        "Fix the cause (`python -m services.doctor`), then purge: "
        f"`docker compose exec rabbitmq rabbitmqctl purge_queue {name}` (or the management UI, port 15672).",
    ]
    return "\n".join(lines)


def as_json(name: str, total: int, letters: list[DeadLetter]) -> str:
    body = {"queue": name, "messages": total, "shown": [asdict(d) for d in letters]}
    return json.dumps(body, ensure_ascii=False, indent=2)


Missing = aiormq.exceptions.ChannelNotFoundEntity
