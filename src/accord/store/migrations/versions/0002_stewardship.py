"""stewardship: the review queue, steward decisions, a record's previous golden id

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PAIR = ("left_system", "left_source_id", "right_system", "right_source_id")


def _pair_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("left_system", sa.String(length=64), nullable=False),
        sa.Column("left_source_id", sa.String(length=256), nullable=False),
        sa.Column("right_system", sa.String(length=64), nullable=False),
        sa.Column("right_source_id", sa.String(length=256), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("crosswalk", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_golden_id", sa.String(length=32), nullable=True))
    op.create_table(
        "match_review",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        *_pair_columns(),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("match_weight", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column(
            "explanation",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_review")),
        sa.UniqueConstraint(
            *PAIR,
            name=op.f("uq_match_review_left_system_left_source_id_right_system_right_source_id"),
        ),
    )
    with op.batch_alter_table("match_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_match_review_status_probability"), ["status", "probability"]
        )
    op.create_table(
        "match_decision",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        *_pair_columns(),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_decision")),
        sa.UniqueConstraint(
            *PAIR,
            name=op.f("uq_match_decision_left_system_left_source_id_right_system_right_source_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("match_decision")
    with op.batch_alter_table("match_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_review_status_probability"))
    op.drop_table("match_review")
    with op.batch_alter_table("crosswalk", schema=None) as batch_op:
        batch_op.drop_column("previous_golden_id")
