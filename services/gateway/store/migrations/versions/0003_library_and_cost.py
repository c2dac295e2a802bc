"""Read-only sharing, and what every story cost, per story and per day.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.gateway.store.schema import add_columns, has_index, has_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COUNTERS = ("tokens_in", "tokens_out", "llm_calls", "image_calls", "pictures", "retries")


def _counters() -> list[sa.Column[int]]:
    return [sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in COUNTERS]


def upgrade() -> None:
    added = add_columns("stories", sa.Column("share_id", sa.String(40), nullable=True), *_counters())
    # SQLite cannot add a UNIQUE column: the uniqueness is a unique index of its own.
    if "share_id" in added and not has_index("stories", "ix_stories_share_id"):
        op.create_index("ix_stories_share_id", "stories", ["share_id"], unique=True)
    if not has_table("usage_daily"):
        op.create_table(
            "usage_daily",
            sa.Column("day", sa.String(10), primary_key=True),
            sa.Column("stories", sa.Integer(), nullable=False),
            *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS],
        )
