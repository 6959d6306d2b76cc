"""the outbox of golden changes and their delivery to each target

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "golden_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("golden_id", sa.String(length=32), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "sources",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("merged_into", sa.String(length=32), nullable=True),
        sa.Column("target", sa.String(length=64), nullable=True),
        sa.Column("changed_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_golden_change")),
    )
    with op.batch_alter_table("golden_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_golden_change_golden_id_id"), ["golden_id", "id"], unique=False
        )

    op.create_table(
        "sync_conflict",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=256), nullable=False),
        sa.Column("golden_id", sa.String(length=32), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("ours", sa.Text(), nullable=True),
        sa.Column("theirs", sa.Text(), nullable=True),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("kept", sa.String(length=16), nullable=False),
        sa.Column("created_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", accord.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflict")),
    )
    with op.batch_alter_table("sync_conflict", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_conflict_target_kept"), ["target", "kept"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sync_conflict_target_record_id"), ["target", "record_id"], unique=False
        )

    op.create_table(
        "sync_cursor",
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", accord.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_sync_cursor")),
    )
    op.create_table(
        "sync_delivery",
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("golden_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "outcome",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", accord.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("target", "change_id", name=op.f("pk_sync_delivery")),
    )
    with op.batch_alter_table("sync_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_delivery_target_state_change_id"),
            ["target", "state", "change_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_sync_delivery_target_state_golden_id_change_id"),
            ["target", "state", "golden_id", "change_id"],
            unique=False,
        )

    op.create_table(
        "sync_record",
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=256), nullable=False),
        sa.Column("golden_id", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("fields", sa.Text(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "record_id", name=op.f("pk_sync_record")),
    )
    with op.batch_alter_table("sync_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_record_target_golden_id"), ["target", "golden_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("sync_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_record_target_golden_id"))

    op.drop_table("sync_record")
    with op.batch_alter_table("sync_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_delivery_target_state_golden_id_change_id"))
        batch_op.drop_index(batch_op.f("ix_sync_delivery_target_state_change_id"))

    op.drop_table("sync_delivery")
    op.drop_table("sync_cursor")
    with op.batch_alter_table("sync_conflict", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_conflict_target_record_id"))
        batch_op.drop_index(batch_op.f("ix_sync_conflict_target_kept"))

    op.drop_table("sync_conflict")
    with op.batch_alter_table("golden_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_golden_change_golden_id_id"))

    op.drop_table("golden_change")
