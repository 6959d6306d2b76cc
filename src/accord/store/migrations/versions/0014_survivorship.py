"""survivorship per field: each source record's hybrid logical clock stamp (NULL for
records stored before), the clock's last stamp, and stewards' overrides of golden values

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import accord.store.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "golden_override",
        sa.Column("golden_id", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", accord.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["golden_id"],
            ["golden_record.golden_id"],
            name=op.f("fk_golden_override_golden_id_golden_record"),
        ),
        sa.PrimaryKeyConstraint("golden_id", "field", name=op.f("pk_golden_override")),
    )
    with op.batch_alter_table("source_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hlc", sa.String(length=24), nullable=True))
    counter = sa.table("counter", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counter, [{"name": "hlc", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM counter WHERE name = 'hlc'")
    with op.batch_alter_table("source_record", schema=None) as batch_op:
        batch_op.drop_column("hlc")
    op.drop_table("golden_override")
