"""Work written with the state that asks for it, until it is published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select, update

from services.gateway.store.base import Database
from services.gateway.store.models import Outbox, utcnow


class OutboxRows(Database):
    async def pending_outbox(self, *, older_than: timedelta, limit: int = 100) -> list[Outbox]:
        cutoff = utcnow() - older_than
        async with self.sessions() as session:
            rows = await session.execute(
                select(Outbox)
                .where(Outbox.published_at.is_(None), Outbox.created_at < cutoff)
                .order_by(Outbox.id)
                .limit(limit)
            )
            return list(rows.scalars())

    async def mark_published(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._tx() as session:
            await session.execute(
                update(Outbox).where(Outbox.id.in_(list(ids))).values(published_at=utcnow())
            )
