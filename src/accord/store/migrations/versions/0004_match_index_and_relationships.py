"""the match index for incremental matching; relationships between golden records

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _document() -> sa.types.TypeEngine:  # type: ignore[type-arg]
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "match_entry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=256), nullable=False),
        sa.Column("canonical_record_id", sa.BigInteger(), nullable=False),
        sa.Column("features", _document(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_entry")),
        sa.UniqueConstraint("system", "source_id", name=op.f("uq_match_entry_system_source_id")),
    )
    op.create_table(
        "match_key",
        sa.Column("key_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("key_hash", "entry_id", name=op.f("pk_match_key")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "match_count",
        sa.Column("key_hash", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_match_count")),
    )
    op.create_table(
        "relationship",
        sa.Column("from_golden_id", sa.String(length=32), nullable=False),
        sa.Column("to_golden_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("evidence", _document(), nullable=False),
        sa.Column("created_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "from_golden_id", "to_golden_id", "type", name=op.f("pk_relationship")
        ),
    )
    op.create_index(
        op.f("ix_relationship_to_golden_id"), "relationship", ["to_golden_id"], unique=False
    )
    # a record's reviews and decisions, whichever side of the pair it is on
    for table in ("match_review", "match_decision"):
        op.create_index(
            op.f(f"ix_{table}_right_system_right_source_id"),
            table,
            ["right_system", "right_source_id"],
            unique=False,
        )


def downgrade() -> None:
    for table in ("match_review", "match_decision"):
        op.drop_index(op.f(f"ix_{table}_right_system_right_source_id"), table_name=table)
    op.drop_index(op.f("ix_relationship_to_golden_id"), table_name="relationship")
    op.drop_table("relationship")
    op.drop_table("match_count")
    op.drop_table("match_key")
    op.drop_table("match_entry")
