"""The store's migrations: a database of the first release, with stories in it, is
upgraded at the gateway's start to today's schema without losing one; the migrations
describe exactly today's tables; a database from a newer gateway is refused, untouched."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from services.common import contracts as c
from services.common.topology import Topology
from services.gateway.store import schema
from services.gateway.store.models import Base
from services.gateway.store.repo import Store

ROOT = Path(__file__).resolve().parents[2]

# The tables as the first release created them (create_all of its models), kept here as
# they were: that release's code is gone, its databases are not.
FIRST = sa.MetaData()
TZ = sa.DateTime(timezone=True)
sa.Table(
    "stories",
    FIRST,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("premise", sa.Text, nullable=False),
    sa.Column("age", sa.Integer, nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("style", sa.String(200), nullable=False),
    sa.Column("total_pages", sa.Integer, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("outline", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)
sa.Table(
    "pages",
    FIRST,
    sa.Column("story_id", sa.ForeignKey("stories.id"), primary_key=True),
    sa.Column("index", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("choices", sa.JSON, nullable=False),
    sa.Column("direction", sa.Text),
    sa.Column("chosen_choice", sa.Integer),
    sa.Column("chosen_action", sa.Text),
    sa.Column("text_attempt", sa.Integer, nullable=False),
    sa.Column("error", sa.JSON),
    sa.Column("image_status", sa.String(16), nullable=False),
    sa.Column("image_attempt", sa.Integer, nullable=False),
    sa.Column("image_prompt", sa.Text),
    sa.Column("image_path", sa.Text),
    sa.Column("image_error", sa.JSON),
    sa.Column("image_started_at", TZ),
)
sa.Table(
    "events",
    FIRST,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("story_id", sa.ForeignKey("stories.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("at", TZ, nullable=False),
    sa.UniqueConstraint("story_id", "seq"),
)
sa.Table(
    "outbox",
    FIRST,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("routing_key", sa.String(64), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("story_id", sa.String(40), nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("published_at", TZ),
    sa.Index("ix_outbox_pending", "published_at", "id"),
)
# What a later release's create_all added to such a database: new tables, never columns.
USAGE_DAILY = sa.Table(
    "usage_daily",
    sa.MetaData(),
    sa.Column("day", sa.String(10), primary_key=True),
    *[sa.Column(n, sa.Integer, nullable=False) for n in ("stories", "tokens_in", "tokens_out")],
    *[sa.Column(n, sa.Integer, nullable=False) for n in ("llm_calls", "image_calls", "pictures", "retries")],
)

OUTLINE = c.Outline(
    title="图图去月亮", characters=[c.Character(name="图图", look="white rabbit")], style="crayon"
)
STORIES = 12


async def first_release_database(url: str, *, later_tables: bool) -> None:
    """A first-release database holding STORIES stories: ended, mid-story, and failed."""
    now = datetime.now(UTC)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(FIRST.create_all)
        if later_tables:
            await conn.run_sync(USAGE_DAILY.metadata.create_all)
            await conn.execute(
                USAGE_DAILY.insert().values(
                    day="2025-01-01",
                    **dict.fromkeys(
                        (
                            "stories",
                            "tokens_in",
                            "tokens_out",
                            "llm_calls",
                            "image_calls",
                            "pictures",
                            "retries",
                        ),
                        7,
                    ),
                )
            )
        for n in range(STORIES):
            status = ("ended", "in_progress", "failed")[n % 3]
            sid = f"story{n:02d}"
            await conn.execute(
                FIRST.tables["stories"]
                .insert()
                .values(
                    id=sid,
                    token_hash="0" * 64,
                    premise=f"premise {n}",
                    age=5,
                    language="zh",
                    style="crayon",
                    total_pages=2,
                    title=f"title {n}",
                    outline=OUTLINE.model_dump(mode="json"),
                    status=status,
                    last_seq=2,
                    created_at=now,
                    updated_at=now,
                )
            )
            pages = [("done", f"page {n}.0", ["left", "right"], 1)]
            pages.append(
                {
                    "ended": ("done", f"page {n}.1", [], None),
                    "in_progress": ("writing", "", [], None),
                    "failed": ("failed", "", [], None),
                }[status]
                + (None,)
            )
            for index, (pstatus, text, choices, chosen, *_) in enumerate(pages):
                await conn.execute(
                    FIRST.tables["pages"]
                    .insert()
                    .values(
                        story_id=sid,
                        index=index,
                        status=pstatus,
                        text=text,
                        choices=choices,
                        chosen_choice=chosen,
                        text_attempt=1,
                        image_status="ready" if index == 0 else "pending",
                        image_attempt=1,
                        image_prompt="p",
                        image_path=f"{sid}/p0.webp" if index == 0 else None,
                        error={"code": "llm_failed", "message": "m"} if pstatus == "failed" else None,
                    )
                )
            for seq, type_ in enumerate(("page.started", "story.outlined"), start=1):
                await conn.execute(
                    FIRST.tables["events"]
                    .insert()
                    .values(
                        story_id=sid,
                        seq=seq,
                        type=type_,
                        data={"page": 0} if seq == 1 else {"title": f"title {n}"},
                        at=now,
                    )
                )
    await engine.dispose()


@pytest.mark.parametrize("later_tables", [False, True], ids=["first-release", "then-create_all-of-later"])
async def test_a_first_release_database_is_upgraded_at_start_without_losing_a_story(
    store_url: str, later_tables: bool
) -> None:
    await first_release_database(store_url, later_tables=later_tables)
    store = Store(store_url, topology=Topology("t"))
    try:
        await store.create_schema()  # what the gateway does at start
        await store.create_schema()  # and at every start after
        assert await schema.version(store.engine) == schema.head()
        for n in range(STORIES):
            story = (await store.read_story(f"story{n:02d}")).model_dump()
            assert story["title"] == f"title {n}" and story["premise"] == f"premise {n}"
            assert story["status"] == ("ended", "in_progress", "failed")[n % 3]
            assert story["pages"][0]["text"] == f"page {n}.0" and story["pages"][0]["chosen"]["choice"] == 1
            assert story["pages"][0]["image"]["url"] == f"/media/story{n:02d}/p0.webp"
            assert story["usage"]["llm_calls"] == 0 and story["character_sheet"]["status"] == "failed"
            assert [e["seq"] for e in await store.events_after(f"story{n:02d}", 0)] == [1, 2]
        # An old story goes on: its page is written, it ends, it is shared and counted.
        done = await store.apply(
            c.PageTextDone(story_id="story01", page=1, text="end", choices=[], image_prompt="p")
        )
        assert [e.type for e in done.events] == ["page.text.done", "story.ended"]
        await store.apply(c.UsageReport(story_id="story01", llm_calls=1, image_calls=1, provider="ark"))
        assert await store.share("story01")
        usage = (await store.usage(days=3650)).model_dump(exclude_none=True)
        assert usage["upstreams"] == {
            "moonshot": {"calls": 1, "pictures": 0},
            "ark": {"calls": 1, "pictures": 0},
        }
        assert (7 if later_tables else 0) + 1 == usage["totals"]["llm_calls"]
        redraw = await store.redraw_sheet("story00")
        assert [e.type for e in redraw.events] == ["story.sheet.started"]
    finally:
        await store.close()


async def test_the_migrations_build_exactly_todays_tables(store_url: str) -> None:
    engine = create_async_engine(store_url)
    try:
        await schema.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    # A model changed without a migration in store/migrations/versions shows here.
    assert [
        d
        for d in diff
        if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")
    ] == []


async def test_a_database_from_a_newer_gateway_is_refused_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stories.db'}"
    engine = create_async_engine(url)
    await schema.upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    await engine.dispose()
    engine = create_async_engine(url)
    try:
        with pytest.raises(schema.SchemaUnknown, match="0999"):
            await schema.upgrade(engine)
    finally:
        await engine.dispose()

    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "APP_ENV": "development",
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/",
        "GATEWAY_PORT": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.gateway",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode != 0
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "schema version 0999" in lines[0] and "newer gateway" in lines[0], lines
