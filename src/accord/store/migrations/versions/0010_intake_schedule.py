"""when each pull channel of each system runs, who runs it now, and how its last run went

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_schedule",
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("timing", sa.String(length=200), nullable=False),
        sa.Column("due_at", accord.store.types.UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", accord.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_started_at", accord.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", accord.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_message", sa.Text(), nullable=True),
        sa.Column("last_load_id", sa.Integer(), nullable=True),
        sa.Column(
            "last_counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", accord.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("system", "channel", name=op.f("pk_intake_schedule")),
    )


def downgrade() -> None:
    op.drop_table("intake_schedule")
