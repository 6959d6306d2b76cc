"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, any_, bindparam, false, or_
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    keep: tuple[str, ...] = (),
) -> None:
    """Insert `rows`, replacing the non-key columns of rows whose `keys` already exist,
    except the columns in `keep`, which keep their stored values."""
    if not rows:
        return
    statement = _insert(conn, table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys and c not in keep}
    conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def insert_new(conn: Connection, table: Table, row: dict[str, Any]) -> bool:
    """Insert `row` unless its key exists; True when it was inserted. (Asks for the key
    back: rowcount is not reliable once PostgreSQL adds an implicit RETURNING.)"""
    statement = _insert(conn, table).on_conflict_do_nothing()
    key = list(table.primary_key.columns)
    return conn.execute(statement.returning(*key), row).first() is not None


def add_to(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], column: str
) -> None:
    """Insert `rows`, or add their `column` to the stored value where `keys` exist."""
    if not rows:
        return
    conn.execute(_add_to(conn.dialect.name, table, tuple(keys), column), rows)


@functools.cache
def _add_to(dialect: str, table: Table, keys: tuple[str, ...], column: str) -> Any:
    """`add_to`'s statement, built once (incremental matching runs it for every record)."""
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={column: table.c[column] + statement.excluded[column]}
    )


def keys_in(first: Any, second: Any, keys: Sequence[tuple[Any, Any]]) -> Any:
    """`(first, second) IN keys`, written so both backends use an index on (first,
    second): one `first = ? AND second IN (...)` per distinct first value. (SQLite scans
    the whole table for a row-value IN list of more than one pair; PostgreSQL plans a long
    one as an OR of every pair.)"""
    grouped: dict[Any, list[Any]] = {}
    for a, b in keys:
        grouped.setdefault(a, []).append(b)
    if not grouped:
        return false()
    return or_(*(and_(first == a, second.in_(bs)) for a, bs in grouped.items()))


def one_of(column: Any, name: str, dialect: str) -> Any:
    """`column IN :name`, the list bound as one parameter. On PostgreSQL that is
    `column = ANY(:name)` with an array, so the statement's text is the same whatever the
    list's length, and psycopg prepares it once it has run a few times (PostgreSQL then
    skips parsing and planning); on SQLite, an expanding `IN` list."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
