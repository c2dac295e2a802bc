"""The character sheet every picture is drawn from, and how each picture was drawn.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa

from services.gateway.store.schema import add_columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stories written before sheets existed have none, and none is being drawn: "failed"
    # lets their reader ask for one (a story with no outline yet gets its own anyway).
    add_columns(
        "stories",
        sa.Column("sheet_status", sa.String(16), nullable=False, server_default="failed"),
        sa.Column("sheet_path", sa.Text(), nullable=True),
    )
    add_columns(
        "pages",
        sa.Column("image_reference", sa.String(32), nullable=True),
        sa.Column("image_note", sa.Text(), nullable=True),
    )
