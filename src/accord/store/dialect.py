"""The few statements that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Table,
    and_,
    any_,
    bindparam,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from accord.store.engine import JSONText

log = logging.getLogger(__name__)


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


def next_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Ids for `count` new rows of `table` (an integer primary key `id`), so that rows
    can be inserted with their ids and referred to in the same batch without asking for
    them back row by row. On PostgreSQL from the column's sequence; on SQLite after the
    highest id, as SQLite itself would number them: a write transaction there has the
    database to itself (BEGIN IMMEDIATE, `store/engine.py`), and one that began
    otherwise and meets a concurrent writer fails rather than reuse an id."""
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        return list(
            conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"table": table.name, "n": count},
            ).scalars()
        )
    highest = conn.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(highest + 1, highest + 1 + count))


def exclusive(conn: Connection, name: str) -> None:
    """Hold the lock called `name` until the caller's transaction ends: one transaction
    at a time gets past this for a name. A PostgreSQL advisory lock; on SQLite every write
    transaction already has the database to itself (BEGIN IMMEDIATE, `store/engine.py`)."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# When a bulk write leaves PostgreSQL's planner statistics stale: autovacuum's own
# rule (autovacuum_analyze_threshold + autovacuum_analyze_scale_factor, its defaults)
ANALYZE_BASE = 50
ANALYZE_SHARE = 0.1


def refresh_statistics(engine: Engine, tables: Sequence[Table], changed: int) -> list[str]:
    """After a bulk write of about `changed` rows to each of `tables`, bring PostgreSQL's
    planner statistics up to date where that many rows make them stale (by autovacuum's
    own rule: more than 50 rows plus a tenth of the table, a table never analyzed
    counting as empty), and return the tables analyzed. Without it the planner keeps the
    row counts of before: after a full resolve into empty tables it plans every lookup
    of incremental matching as a scan of the whole table (matching ran at half its
    speed), until autovacuum analyzes them, which may be a minute later or, with
    autovacuum off, never. SQLite
    plans by its indexes alone (no `ANALYZE` has been run on it, so none is kept): a
    no-op there. Call it after the writes commit, in a transaction of its own (it opens
    one): what ANALYZE samples must be committed to count for the others, and it blocks
    neither readers nor writers. It never fails the work it follows, which is committed:
    an error (a timeout, a lost connection) is logged and left to autovacuum."""
    if engine.dialect.name != "postgresql" or changed <= 0 or not tables:
        return []
    try:
        return _analyze_stale(engine, tables, changed)
    except Exception as exc:  # noqa: BLE001  (an optimisation: what it follows is committed)
        log.warning("planner statistics not brought up to date (%s); autovacuum will", exc)
        return []


def _analyze_stale(engine: Engine, tables: Sequence[Table], changed: int) -> list[str]:
    with engine.begin() as conn:
        rows = conn.execute(
            text(
                "SELECT n, (SELECT reltuples FROM pg_class WHERE oid = to_regclass(n)) "
                "FROM unnest(CAST(:names AS text[])) AS n"
            ),
            {"names": [table.name for table in tables]},
        )
        # (a table never analyzed counts as empty, as autovacuum counts it)
        stale = [
            name
            for name, tuples in rows
            if tuples is not None and changed > ANALYZE_BASE + ANALYZE_SHARE * max(tuples, 0)
        ]
        if stale:
            quote = conn.dialect.identifier_preparer.quote
            conn.execute(text("ANALYZE " + ", ".join(quote(name) for name in stale)))
    return stale


def autovacuum_off(engine: Engine) -> bool:
    """Whether PostgreSQL's autovacuum is off for this database: then nothing but
    `refresh_statistics` after a load or a full resolve keeps the planner's statistics
    up to date, and records that arrive by push, poll or broker leave them ever staler.
    False on SQLite."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return conn.execute(text("SELECT current_setting('autovacuum')")).scalar() == "off"


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


def seconds_between(start: Any, end: Any, dialect: str) -> Any:
    """`end - start` in seconds, as a float, for two UTCDateTime columns. SQLite keeps
    them as text, which julianday reads (to about a millisecond at today's dates)."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start).cast(Float)
    return (func.julianday(end) - func.julianday(start)) * 86_400.0


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    replace_on: Sequence[str] | None = None,
    keep: Sequence[str] = (),
) -> None:
    """Insert `rows` (dicts with the same keys); with `replace_on` (key columns), a row
    whose key exists replaces the stored values of its other columns, except those in
    `keep`. On SQLite the rows go straight to the driver's `executemany`, each value
    converted by its column's type as SQLAlchemy would (JSON, UTC datetimes), one column
    at a time: SQLAlchemy's per-row parameter handling costs several times the insert
    itself, and a resolve writes millions of rows. On PostgreSQL, many rows go through
    COPY, converted the same way (upserts through a temporary table); a few rows, and
    upserts that repeat a key, through SQLAlchemy."""
    if not rows:
        return
    copying = (
        conn.dialect.name == "postgresql"
        and len(rows) >= _COPY_FROM
        # ON CONFLICT cannot update one row twice in a statement: repeated keys go row by row
        and (replace_on is None or _unique(rows, replace_on))
    )
    if conn.dialect.name != "sqlite" and not copying:
        if replace_on is None:
            conn.execute(table.insert(), list(rows))
        else:
            upsert(conn, table, [dict(r) for r in rows], list(replace_on), tuple(keep))
        return
    names = list(rows[0])
    values = [driver_values(conn, table, name, [row[name] for row in rows]) for name in names]
    replacing = None
    if replace_on is not None:
        keys = [table.c[key].name for key in replace_on]
        others = [name for name in names if name not in keys and name not in keep]
        replacing = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET " + ", ".join(
            f"{name} = excluded.{name}" for name in others
        )
    if copying:  # many rows on PostgreSQL: COPY, each value converted as above
        copied = [table.c[name].name for name in names]
        _copy(conn, table, copied, list(zip(*values, strict=True)), replacing)
        return
    sql = _insert_sql(table, names)
    if replacing is not None:
        sql += " " + replacing
    conn.exec_driver_sql(sql, list(zip(*values, strict=True)))


def driver_values(conn: Connection, table: Table, name: str, column: list[Any]) -> list[Any]:
    """The values of `table`'s column `name` as the driver takes them, converted by the
    column's type as SQLAlchemy would (JSON, UTC datetimes): for statements given to the
    driver's `executemany` straight, without SQLAlchemy's per-row parameter handling."""
    process = table.c[name].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if process is None or _written(column):
        return column
    if column and isinstance(column[0], datetime):  # mostly one time for all rows: once
        converted = {value: process(value) for value in set(column)}
        return [converted[value] for value in column]
    return [process(value) for value in column]


def _written(column: list[Any]) -> bool:
    """Whether every value of a JSON column is its text already (`JSONText`), which
    the column's own conversion would hand on as it is."""
    return bool(column) and all(type(v) is JSONText for v in column)


def _unique(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> bool:
    return len({tuple(row[key] for key in keys) for row in rows}) == len(rows)


def _insert_sql(table: Table, names: Sequence[str]) -> str:
    columns = [table.c[name].name for name in names]  # our own tables' columns only
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )


_COPY_FROM = 100  # rows: fewer (incremental matching's) are inserted with VALUES


def _copy(
    conn: Connection,
    table: Table,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    on_conflict: str | None,
) -> None:
    """Rows inserted on PostgreSQL through COPY, in the connection's transaction: many
    times faster than multi-row VALUES. Rows with an `on_conflict` clause (adding to a
    count, replacing values) are copied into a temporary table first, then inserted
    with one INSERT ... SELECT ... ON CONFLICT."""
    target = table.name
    if on_conflict is not None:
        # the columns copied only, without the table's constraints (a serial id is left
        # to the table); one temporary table per table and set of columns
        shape = hashlib.sha256(",".join(names).encode()).hexdigest()[:8]
        target = f"accord_incoming_{table.name}_{shape}"
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} ON COMMIT DROP AS "
            f"SELECT {', '.join(names)} FROM {table.name} WITH NO DATA"
        )
    driver: Any = conn.connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {target} ({', '.join(names)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    if on_conflict is not None:
        conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(names)}) "
            f"SELECT {', '.join(names)} FROM {target} " + on_conflict
        )
        conn.exec_driver_sql(f"TRUNCATE {target}")


def _adding(table: Table, keys: Sequence[str], counter: str) -> str:
    """The ON CONFLICT clause that adds a row's `counter` to the stored one."""
    counter = table.c[counter].name
    return (
        f"ON CONFLICT ({', '.join(table.c[key].name for key in keys)}) DO UPDATE SET "
        f"{counter} = {table.name}.{counter} + excluded.{counter}"
    )


def insert_many(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    add_on_conflict: tuple[Sequence[str], str] | None = None,
) -> None:
    """Insert many rows of plain values (`columns` in order). With `add_on_conflict`
    (key columns, counter column), a row whose key exists adds its counter to the stored
    one. On SQLite the rows go straight to the driver's `executemany`: SQLAlchemy's
    per-row parameter handling costs several times the insert itself, and a resolve
    writes millions of index rows. On PostgreSQL, many rows go through COPY (`_copy`),
    a few through SQLAlchemy (multi-row VALUES)."""
    if not rows:
        return
    names = [table.c[name].name for name in columns]  # our own tables' columns only
    if conn.dialect.name == "postgresql" and len(rows) >= _COPY_FROM:
        _copy(conn, table, names, rows, add_on_conflict and _adding(table, *add_on_conflict))
        return
    if conn.dialect.name != "sqlite":
        dicts = [dict(zip(names, row, strict=True)) for row in rows]
        if add_on_conflict is None:
            conn.execute(table.insert(), dicts)
        else:
            add_to(conn, table, dicts, list(add_on_conflict[0]), add_on_conflict[1])
        return
    sql = _insert_sql(table, names)
    if add_on_conflict is not None:
        sql += " " + _adding(table, *add_on_conflict)
    conn.exec_driver_sql(sql, list(rows))
