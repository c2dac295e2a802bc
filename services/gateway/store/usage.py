"""What stories cost: per story, per UTC day, and per upstream per day."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.store.base import Database
from services.gateway.store.models import COUNTERS, UsageDaily, UsageUpstreamDaily, utcnow
from services.gateway.store.views import PerUpstream, UsageDay, UsageTotals, UsageView


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both dialects spell it alike)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def add_daily(session: AsyncSession, **amounts: int) -> None:
    """Add to today's totals in one statement (an upsert): no read, and the day's row
    is locked only from here to the commit, so the many usage reports of a busy day do
    not queue behind each other's whole transactions."""
    day = utcnow().strftime("%Y-%m-%d")
    insert = _insert(session)
    row = dict.fromkeys(("stories", *COUNTERS), 0) | amounts
    stmt = insert(UsageDaily).values(day=day, **row)
    table = UsageDaily.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.day],
        set_={name: table[name] + stmt.excluded[name] for name in amounts},
    )
    await session.execute(stmt)


async def add_upstream(session: AsyncSession, upstream: str, *, calls: int, pictures: int = 0) -> None:
    day = utcnow().strftime("%Y-%m-%d")
    insert = _insert(session)
    stmt = insert(UsageUpstreamDaily).values(day=day, upstream=upstream, calls=calls, pictures=pictures)
    table = UsageUpstreamDaily.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.day, table.upstream],
        set_={
            "calls": table.calls + stmt.excluded.calls,
            "pictures": table.pictures + stmt.excluded.pictures,
        },
    )
    await session.execute(stmt)


class UsageReads(Database):
    async def usage(self, *, days: int) -> UsageView:
        async with self.sessions() as session:
            rows = await session.execute(select(UsageDaily).order_by(UsageDaily.day.desc()).limit(days))
            per_day = [
                UsageDay(day=r.day, stories=r.stories, **{n: getattr(r, n) for n in COUNTERS})
                for r in rows.scalars()
            ]
            by_day = {d.day: d for d in per_day}
            found = await session.execute(
                select(UsageUpstreamDaily).where(UsageUpstreamDaily.day.in_(by_day))
            )
            by_upstream: dict[str, PerUpstream] = {}
            for r in found.scalars():
                total = by_upstream.setdefault(r.upstream, PerUpstream())
                total.calls += r.calls
                total.pictures += r.pictures
                day = by_day[r.day]
                day.upstreams = (day.upstreams or {}) | {
                    r.upstream: PerUpstream(calls=r.calls, pictures=r.pictures)
                }
        totals = UsageTotals(**{n: sum(getattr(d, n) for d in per_day) for n in ("stories", *COUNTERS)})
        return UsageView(days=per_day, totals=totals, upstreams=by_upstream)
