"""Whether the reader typed the idea a page follows (it is judged before it is written).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa

from services.gateway.store.schema import add_columns

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_columns(
        "pages", sa.Column("direction_typed", sa.Boolean(), nullable=False, server_default=sa.false())
    )
