"""the durable work queue between intake and matching

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import accord.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_item",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=256), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("enqueued_at", accord.store.types.UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", accord.store.types.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("covered_token", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_item")),
        sa.UniqueConstraint("system", "source_id", name=op.f("uq_work_item_system_source_id")),
    )
    op.create_index(
        op.f("ix_work_item_entity_type_id"), "work_item", ["entity_type", "id"], unique=False
    )
    # every record stored before the queue existed and not matched since is queued
    op.execute(
        """
        INSERT INTO work_item (system, source_id, entity_type, token, enqueued_at, attempts)
        SELECT h.system, h.source_id, c.entity_type, 'migrated', h.updated_at, 0
        FROM record_head h
        JOIN canonical_record c ON c.id = h.canonical_record_id
        LEFT JOIN match_entry m ON m.system = h.system AND m.source_id = h.source_id
        WHERE m.id IS NULL OR m.canonical_record_id <> h.canonical_record_id
        ORDER BY h.updated_at, h.system, h.source_id
        """
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_work_item_entity_type_id"), table_name="work_item")
    op.drop_table("work_item")
