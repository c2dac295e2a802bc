"""Calls and pictures per upstream (moonshot, jimeng, ark) per day.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.gateway.store.schema import has_table

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not has_table("usage_upstream_daily"):
        op.create_table(
            "usage_upstream_daily",
            sa.Column("day", sa.String(10), primary_key=True),
            sa.Column("upstream", sa.String(16), primary_key=True),
            sa.Column("calls", sa.Integer(), nullable=False),
            sa.Column("pictures", sa.Integer(), nullable=False),
        )
