"""received-to-golden latency: how long each record matched from the work queue waited,
from its queue row's `enqueued_at` to the transaction that matched it (a day's worth,
read by integration health over the last hour)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import accord.store.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "match_wait",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("matched_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_wait")),
    )
    with op.batch_alter_table("match_wait", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_match_wait_matched_at"), ["matched_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("match_wait", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_wait_matched_at"))
    op.drop_table("match_wait")
