"""quarantine: fields as read, corrections, replay and discard; a load's records by load

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _document() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("fields", _document(), nullable=True))
        batch.add_column(sa.Column("correction", _document(), nullable=True))
        batch.add_column(sa.Column("corrected_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("corrected_at", accord.store.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("replay_load_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("closed_at", accord.store.types.UTCDateTime(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_quarantine_replay_load_id_load"), "load", ["replay_load_id"], ["id"]
        )
        batch.create_index(op.f("ix_quarantine_load_id"), ["load_id"], unique=False)
    op.create_index(op.f("ix_source_record_load_id"), "source_record", ["load_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_source_record_load_id"), table_name="source_record")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_index(op.f("ix_quarantine_load_id"))
        batch.drop_constraint(op.f("fk_quarantine_replay_load_id_load"), type_="foreignkey")
        for column in (
            "closed_at",
            "closed_by",
            "note",
            "replay_load_id",
            "corrected_at",
            "corrected_by",
            "correction",
            "fields",
        ):
            batch.drop_column(column)
