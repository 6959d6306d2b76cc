"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Insert `rows`, replacing the non-key columns of rows whose `keys` already exist."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
