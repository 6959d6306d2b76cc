"""the SQL polling channel's cursor per system

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import accord.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poll_cursor",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.Text(), nullable=True),
        sa.Column("watermark_type", sa.String(length=16), nullable=True),
        sa.Column("last_key", sa.Text(), nullable=True),
        sa.Column("key_type", sa.String(length=16), nullable=True),
        sa.Column("last_run_at", accord.store.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", accord.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("system", name=op.f("pk_poll_cursor")),
    )


def downgrade() -> None:
    op.drop_table("poll_cursor")
