"""indexes for the health figures: records received, quarantine entries filed and
deliveries finished lately

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_record_system_received_at"),
            ["system", "received_at"],
            unique=False,
        )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_system_created_at"), ["system", "created_at"], unique=False
        )
    with op.batch_alter_table("sync_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_delivery_target_finished_at"),
            ["target", "finished_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_delivery_target_finished_at"))
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_system_created_at"))
    with op.batch_alter_table("source_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_record_system_received_at"))
