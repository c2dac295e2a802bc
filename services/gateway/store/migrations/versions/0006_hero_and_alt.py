"""The child's own hero on a story (a name, and the drawing the sheet is drawn from), and
the alt text of a page's picture.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa

from services.gateway.store.schema import add_columns

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_columns(
        "stories",
        sa.Column("hero_name", sa.String(40), nullable=True),
        sa.Column("hero_path", sa.Text(), nullable=True),
    )
    add_columns("pages", sa.Column("image_alt", sa.Text(), nullable=True))
