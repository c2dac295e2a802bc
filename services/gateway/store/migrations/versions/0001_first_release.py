"""The first released schema: stories, their pages, their events, and the outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("premise", sa.Text(), nullable=False),
        sa.Column("age", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("style", sa.String(200), nullable=False),
        sa.Column("total_pages", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("outline", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "pages",
        sa.Column("story_id", sa.String(40), sa.ForeignKey("stories.id"), primary_key=True),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=True),
        sa.Column("chosen_choice", sa.Integer(), nullable=True),
        sa.Column("chosen_action", sa.Text(), nullable=True),
        sa.Column("text_attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("image_status", sa.String(16), nullable=False),
        sa.Column("image_attempt", sa.Integer(), nullable=False),
        sa.Column("image_prompt", sa.Text(), nullable=True),
        sa.Column("image_path", sa.Text(), nullable=True),
        sa.Column("image_error", sa.JSON(), nullable=True),
        sa.Column("image_started_at", TZ, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("story_id", sa.String(40), sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.UniqueConstraint("story_id", "seq"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("routing_key", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("story_id", sa.String(40), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("published_at", TZ, nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["published_at", "id"])
