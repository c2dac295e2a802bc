"""The story store and the media directory: can the service write there right now?

The store is probed with a real write inside a transaction that is rolled back, so
a read-only file, a full disk or a user without rights shows up here and not at
the first reader. A SQLite file that does not exist yet is not created.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.common.settings import FIXES
from services.doctor.environment import redact_url
from services.doctor.report import Row


async def check_store(database_url: str, *, wait: float) -> Row:
    if (not_created := await asyncio.to_thread(_sqlite_not_created, database_url)) is not None:
        return not_created
    shown = redact_url(database_url)
    engine = create_async_engine(database_url, connect_args={"timeout": wait}, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        _sqlite_transactional_ddl(engine)
    try:
        async with engine.connect() as conn, conn.begin() as tx:
            table = f"doctor_probe_{uuid.uuid4().hex[:12]}"
            await conn.execute(text(f"CREATE TABLE {table} (x INTEGER)"))
            await conn.execute(text(f"INSERT INTO {table} (x) VALUES (1)"))
            await tx.rollback()
    except Exception as exc:  # any driver's error: the reason is what the operator needs
        return _store_failed(shown, exc)
    finally:
        await engine.dispose()
    return Row.ok("store", f"{shown}: write ok (rolled back)")


def _sqlite_transactional_ddl(engine: AsyncEngine) -> None:
    """The Python sqlite driver runs CREATE TABLE outside any transaction (committed at
    once), so the probe's table would outlive the rollback; an explicit BEGIN IMMEDIATE
    puts it inside, and takes the write lock as the gateway's writes do."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_not_created(database_url: str) -> Row | None:
    """A SQLite file that does not exist yet: fine if the gateway can create it (not created here)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    if path.exists():
        return None
    if (base := _creatable(path)) is not None:
        return Row.ok("store", f"{path} does not exist yet; the gateway creates it ({base} is writable)")
    return Row.fail(
        "store",
        f"{path} does not exist and cannot be created (no writable directory above it)",
        f"DATABASE_URL: {FIXES['DATABASE_URL']}; the directory must exist and be writable by the gateway",
    )


def _store_failed(shown: str, exc: Exception) -> Row:
    why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return Row.fail(
        "store",
        f"{shown}: cannot write: {why[:300]}",
        f"DATABASE_URL: {FIXES['DATABASE_URL']}. SQLite: the file and its directory must be writable by "
        "the gateway's user. PostgreSQL: the server must run and the user must be allowed to create tables",
    )


def check_media(media_dir: Path, *, service: str) -> Row:
    check = "media dir"
    fix = f"MEDIA_DIR: {FIXES['MEDIA_DIR']} (docker compose: the `data` volume, owned by uid 10001)"
    if media_dir.exists():
        if not media_dir.is_dir():
            return Row.fail(check, f"{media_dir} is not a directory", fix)
        try:
            with tempfile.NamedTemporaryFile(dir=media_dir, prefix=".doctor-"):
                pass
        except OSError as exc:
            return Row.fail(check, f"{media_dir} is not writable: {exc.strerror}", fix)
        return Row.ok(check, f"{media_dir}: writable (as the {service} sees it)")
    if (parent := _creatable(media_dir)) is not None:
        return Row.ok(
            check, f"{media_dir} does not exist yet; the {service} creates it ({parent} is writable)"
        )
    return Row.fail(check, f"{media_dir} does not exist and cannot be created", fix)


def _creatable(path: Path) -> Path | None:
    """The nearest existing directory above `path`, if the service could create `path` in it."""
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return parent
    return None
