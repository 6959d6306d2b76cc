"""parents by tax id: two partial expression indexes on canonical_record, over an
organization's `tax_id` and `parent_tax_id` in its JSON data, so that an incremental
resolve finds the organizations holding a parent's tax id, and those naming one, by an
index search. Only organizations' records with the field are indexed.

Each backend writes the expression its own way (`json_extract` on SQLite, `->>` on
PostgreSQL's JSONB); a query uses the index only with the same expression and condition
(`accord.store.relationships._organizations_by`). The indexes live outside
`tables.metadata`; their names are in `accord.store.relationships.INDEX_OBJECTS`. A later
migration that rebuilds canonical_record on SQLite (a batch ALTER) must make them again:
SQLAlchemy does not reflect expression indexes there.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_FIELDS = {
    "tax_id": "ix_canonical_record_tax_id",
    "parent_tax_id": "ix_canonical_record_parent_tax_id",
}


def _sqlite(field: str, name: str) -> str:
    value = f"json_extract(data, '$.{field}')"
    return (
        f"CREATE INDEX {name} ON canonical_record ({value}) "
        f"WHERE json_extract(data, '$.kind') = 'organization' AND {value} IS NOT NULL"
    )


def _postgresql(field: str, name: str) -> str:
    value = f"(data ->> '{field}')"
    return (
        f"CREATE INDEX {name} ON canonical_record ({value}) "
        f"WHERE (data ->> 'kind') = 'organization' AND {value} IS NOT NULL"
    )


def upgrade() -> None:
    write = _sqlite if op.get_bind().dialect.name == "sqlite" else _postgresql
    for field, name in _FIELDS.items():
        op.execute(write(field, name))


def downgrade() -> None:
    for name in _FIELDS.values():
        op.execute(f"DROP INDEX {name}")
