"""The store's schema: Alembic migrations from the first release on, applied at start.

`upgrade` brings any database to the newest schema in one transaction (PostgreSQL
holds an advisory lock, SQLite its write lock, so two gateways starting together
migrate once). A database made by `create_all` before migrations existed has no
version: it is taken as the first release's schema and upgraded, and every step adds
only what is missing, since `create_all` did add the tables of later releases (never
their columns). A database whose version this gateway does not know (made by a newer
one) is refused with one line, and left untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST = "0001"
# Any fixed number: the key of the PostgreSQL advisory lock that serialises migrations.
LOCK_KEY = 7_041_652_003


class _Chatter(logging.Filter):
    """Alembic says which DDL mode it assumes on every start; only upgrades are news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_Chatter())


class SchemaUnknown(Exception):
    """The database is at a schema version this gateway does not know."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def _upgrade(connection: Connection) -> None:
    config = _config(connection)
    script = ScriptDirectory.from_config(config)
    known = {r.revision for r in script.walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = [r for r in current if r not in known]
    if unknown:
        raise SchemaUnknown(
            f"the database is at schema version {', '.join(unknown)}, which this gateway does not know "
            f"(its newest is {script.get_current_head()}): it was upgraded by a newer gateway; run that "
            "version, or restore a backup taken before the upgrade. Nothing was changed."
        )
    if not current and sa.inspect(connection).has_table("stories"):
        command.stamp(config, FIRST)  # made by create_all before migrations existed
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        await conn.run_sync(_upgrade)


async def version(engine: AsyncEngine) -> str | None:
    """The database's schema version (None: not versioned, or empty)."""
    async with engine.connect() as conn:
        heads = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    return heads[0] if heads else None


# ----------------------------------------------------------- used by the migrations


def has_table(table: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(table)


def has_index(table: str, name: str) -> bool:
    return any(i["name"] == name for i in sa.inspect(op.get_bind()).get_indexes(table))


def add_columns(table: str, *columns: sa.Column[Any]) -> set[str]:
    """Add the columns the table lacks (a create_all database may have some): their names."""
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    added = set()
    for column in columns:
        if column.name not in present:
            op.add_column(table, column)
            added.add(column.name)
    return added
