"""the learned model of each resolve

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _document() -> sa.types.TypeEngine:  # type: ignore[type-arg]
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "match_model",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("project_digest", sa.String(length=64), nullable=False),
        sa.Column("params", _document(), nullable=False),
        sa.Column("blocking", _document(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_model")),
    )


def downgrade() -> None:
    op.drop_table("match_model")
