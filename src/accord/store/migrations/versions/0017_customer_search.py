"""customer search index: on SQLite an FTS5 table of each golden record's search text
(trigram tokenizer: any substring of three characters or more) and an index for name
order; on
PostgreSQL the pg_trgm extension and a GIN trigram index on golden_record.search_text.
Both are filled from the records already stored.

The objects live outside `tables.metadata` (autogenerate cannot describe them); their
names are in `accord.store.search.INDEX_OBJECTS`.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# An FTS5 row's rowid is its golden id's number: golden ids are "C" and a number, given
# once and never reused (store.golden.allocate_ids). golden_record's own rowid would not
# do: VACUUM may renumber the rowids of a table without an INTEGER PRIMARY KEY. The
# code that writes golden records keeps the table in step (store.search.index_new,
# reindex): triggers would write the FTS5 table a row at a time, ten times the cost.
_SQLITE_UP = [
    "CREATE VIRTUAL TABLE golden_search USING fts5(search_text, tokenize = 'trigram')",
    (
        "INSERT INTO golden_search (rowid, search_text) "
        "SELECT CAST(substr(golden_id, 2) AS INTEGER), search_text FROM golden_record"
    ),
    # A search with many hits reads customers in name order, testing each one's search
    # text, until a page is full: from this index alone, not the table (at a million
    # customers, a sixth of the time). PostgreSQL's btree entries have a size limit a
    # long search text could pass, and its planner has the trigram index.
    (
        "CREATE INDEX ix_golden_search_order "
        "ON golden_record (status, display_name, golden_id, search_text)"
    ),
]

# Where pg_trgm is installed if it is missing (kept here, not imported: what a migration
# does must not change with the code after it).
TRIGRAM_SCHEMA = "public"


def _trigram_schema(conn: Connection) -> str:
    """The schema pg_trgm is installed in, whose operator class the index names."""
    return str(
        conn.execute(
            text(
                "SELECT n.nspname FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
        ).scalar_one()
    )


_SQLITE_DOWN = [
    "DROP INDEX ix_golden_search_order",
    "DROP TABLE golden_search",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)
        return
    # In `public` unless it is installed already: an extension belongs to the database,
    # and one made in a schema that is later dropped (a test run's) would take every
    # other schema's trigram index with it. The index names the schema it is in.
    op.execute(f"CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA {TRIGRAM_SCHEMA}")
    schema = _trigram_schema(bind)
    op.execute(
        "CREATE INDEX ix_golden_search_trigram ON golden_record "
        f'USING gin (search_text "{schema}".gin_trgm_ops)'
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_DOWN:
            op.execute(statement)
        return
    op.execute("DROP INDEX ix_golden_search_trigram")  # the extension may serve others
