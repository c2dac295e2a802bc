"""Alembic's entry point: migrations run on the connection the gateway hands over.

The gateway applies them at start (services.gateway.store.schema); nothing here opens
a connection of its own, so the URL and the engine settings are the gateway's.
"""

from __future__ import annotations

from alembic import context

from services.gateway.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit(
        "store migrations run inside the gateway: start it (python -m services.gateway), "
        "or call services.gateway.store.schema.upgrade"
    )
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
