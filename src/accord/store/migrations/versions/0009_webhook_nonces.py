"""signed webhook deliveries (replay protection) and broker messages stored but not
yet acknowledged

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import accord.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("load_id", sa.Integer(), nullable=False),
        sa.Column("created_at", accord.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["load_id"], ["load.id"], name=op.f("fk_webhook_delivery_load_id_load")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint(
            "system", "signature", name=op.f("uq_webhook_delivery_system_signature")
        ),
    )
    op.create_index(
        op.f("ix_webhook_delivery_created_at"), "webhook_delivery", ["created_at"], unique=False
    )
    op.create_table(
        "broker_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("message_key", sa.String(length=320), nullable=False),
        sa.Column("load_id", sa.Integer(), nullable=False),
        sa.Column("created_at", accord.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["load_id"], ["load.id"], name=op.f("fk_broker_delivery_load_id_load")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_delivery")),
        sa.UniqueConstraint(
            "system", "message_key", name=op.f("uq_broker_delivery_system_message_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("broker_delivery")
    op.drop_index(op.f("ix_webhook_delivery_created_at"), table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
