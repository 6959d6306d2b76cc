"""linked records: orders, invoices, tickets and contracts, each naming its customer by
the source id of the customer's record (attached to golden customers through the
crosswalk when read); quarantine entries found by source id (orphans' reasons)

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _document() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "linked_record",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=256), nullable=False),
        sa.Column("customer_system", sa.String(length=64), nullable=False),
        sa.Column("customer_source_id", sa.String(length=256), nullable=False),
        sa.Column("occurred_at", accord.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("amount", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("issues", _document(), nullable=False),
        sa.Column("payload", _document(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("mapping_version", sa.String(length=64), nullable=False),
        sa.Column("load_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["load_id"], ["load.id"], name=op.f("fk_linked_record_load_id_load")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_linked_record")),
        sa.UniqueConstraint(
            "system", "kind", "source_id", name=op.f("uq_linked_record_system_kind_source_id")
        ),
    )
    with op.batch_alter_table("linked_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_linked_record_customer_system_customer_source_id_system"),
            ["customer_system", "customer_source_id", "system"],
            unique=False,
        )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_system_source_id"), ["system", "source_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_system_source_id"))
    with op.batch_alter_table("linked_record", schema=None) as batch_op:
        batch_op.drop_index(
            batch_op.f("ix_linked_record_customer_system_customer_source_id_system")
        )
    op.drop_table("linked_record")
