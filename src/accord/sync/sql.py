"""The SQL channel out: a table in the system's own database, one row per customer
record, written with the same conditions as the HTTP channel (docs/sync.md).

The row's `version` column is its ETag (the integer as text). Each operation of
`dispatch._Round` becomes one statement:
- put with `if_match=v`: `UPDATE t SET <fields>, version = version + 1 WHERE key = :id
  AND version = :v` (and not marked deleted);
- put with `if_none_match="*"`: `INSERT` (version 1), doing nothing when a row with a
  unique value is there;
- delete with `if_match=v`: `UPDATE t SET deleted = true, version = version + 1 WHERE ...`
  with a `deleted` column, else `DELETE ... WHERE key = :id AND version = :v`.
A statement that changed no row is answered from the row as it is now: 412 with the
record (the system changed it since Accord saw it, or Accord's own write got there
before its answer was lost), 404 when there is no row, 412 with the record marked
deleted for a row marked deleted. The rows a chunk of operations wrote or could not
write are read back in one SELECT, so every answer carries the row's real version.

The operations of one `apply` go in transactions of `sql.batch`. A connection lost, a
timeout or a lock not granted (`OperationalError`) raises `Unavailable`: nothing of the
transaction was kept, the deliveries wait their back-off and the breaker counts it. A
row the table refuses (a constraint, a value its column cannot hold) fails that one
operation (422, not to be tried again) and the chunk is written again one operation per
transaction, so the others go through.

Statements are built from the table as reflected by SQLAlchemy: identifiers are quoted
by it, values bound as parameters, never written into the SQL. The table is checked
when the channel opens (or, if the database is down then, at its first use): the
columns named in accord.yaml and the delivered fields must be there, the key text and
unique, the version an integer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    create_engine,
    delete,
    false,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    ArgumentError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from accord.config.sync import SqlTarget
from accord.intake.poll import json_ready
from accord.store.engine import first_line, shown_url
from accord.sync.channel import Operation, Remote, Result, TargetMisconfigured, Unavailable

REFUSED = 422  # the table refused the row: a constraint, a value its column cannot hold
CLASHED = 409  # an insert met a unique value of another row (not the key)

_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


class SqlChannel:
    def __init__(self, target: str, config: SqlTarget, fields: Sequence[str]) -> None:
        self.target = target
        self.config = config
        self.fields = list(fields)
        url = os.environ.get(config.url_env)
        if not url:
            raise TargetMisconfigured(
                f"{target}: the environment variable {config.url_env} holding the URL of "
                "the target's database is not set",
                hint=f"export {config.url_env}=postgresql+psycopg://user:password@host/db "
                "(any SQLAlchemy URL) before running `accord sync`",
            )
        self.shown_url = shown_url(url)
        try:
            # a connection the server dropped is found out and replaced on checkout
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise TargetMisconfigured(
                f"{target}: {config.url_env} does not hold a database URL accord can use "
                f"({self.shown_url}): {exc}",
                hint="set it to a SQLAlchemy URL such as postgresql+psycopg://… or sqlite:///path",
            ) from None
        self._table: Table | None = None
        try:
            self.table()  # checked now when the database answers; else at first use
        except Unavailable:
            pass
        except TargetMisconfigured:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    # --- the table -----------------------------------------------------------------------

    def table(self) -> Table:
        """The table as reflected, checked against the settings; raises
        TargetMisconfigured when it cannot work, Unavailable when the database does not
        answer."""
        if self._table is not None:
            return self._table
        config = self.config
        where = f"{config.schema_}.{config.table}" if config.schema_ else config.table
        try:
            with self._connected() as conn:
                table = Table(config.table, MetaData(), schema=config.schema_, autoload_with=conn)
                unique = _unique_columns(conn, config.table, config.schema_)
        except NoSuchTableError:
            raise TargetMisconfigured(
                f"{self.target}: the table {where} is not in the database at {self.shown_url}",
                hint=f"create it (docs/sync.md says what it needs), or correct "
                f"systems.{self.target}.deliver.sql.table and schema",
            ) from None
        except SQLAlchemyError as exc:
            raise self._unavailable("reading the table's columns", exc) from None
        problems = self._problems(table, unique)
        if problems:
            raise TargetMisconfigured(
                f"{self.target}: the table {where} cannot take the deliveries: "
                + "; ".join(problems),
                hint=f"its columns: {', '.join(table.c.keys())}. Correct "
                f"systems.{self.target}.deliver (sql and fields), or the table",
            )
        self._table = table
        return table

    def _problems(self, table: Table, unique: set[str]) -> list[str]:
        config = self.config
        problems = []
        for role, name in (
            ("key", config.key),
            ("version", config.version),
            ("deleted", config.deleted),
            ("updated_at", config.updated_at),
        ):
            if name is not None and name not in table.c:
                problems.append(f"no column {name!r} (sql.{role})")
        absent = [f for f in self.fields if f not in table.c]
        if absent:
            problems.append(f"no column for the delivered field(s) {', '.join(absent)}")
        if config.key in table.c:
            if _python_type(table.c[config.key]) is not str:
                problems.append(f"the key {config.key!r} is not a text column")
            if config.key not in unique:
                problems.append(f"the key {config.key!r} is neither the primary key nor unique")
        if config.version in table.c and _python_type(table.c[config.version]) is not int:
            problems.append(f"the version {config.version!r} is not an integer column")
        deleted = table.c.get(config.deleted) if config.deleted is not None else None
        if deleted is not None and _python_type(deleted) not in {bool, int}:
            problems.append(f"the column {config.deleted!r} (sql.deleted) is not a boolean")
        return problems

    # --- reading -----------------------------------------------------------------------

    def get(self, record_id: str) -> Remote | None:
        """The row of `record_id`; None when there is none; marked deleted, a tombstone."""
        table = self.table()
        try:
            with self._connected() as conn:
                found = self._read(conn, table, [record_id])
        except SQLAlchemyError as exc:
            raise self._unavailable(f"reading {record_id}", exc) from None
        return found.get(record_id)

    def page(self, after: str | None, limit: int = 1000) -> tuple[list[Remote], str | None]:
        """Up to `limit` live rows in key order after `after`; and the key to ask after
        next (None: this was the last page)."""
        table = self.table()
        key = table.c[self.config.key]
        query = self._select(table).order_by(key).limit(limit)
        if after is not None:
            query = query.where(key > after)
        if self.config.deleted is not None:
            query = query.where(_live(table, self.config.deleted))
        try:
            with self._connected() as conn:
                records = [self._remote(row) for row in conn.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise self._unavailable("listing the rows", exc) from None
        following = records[-1].record_id if len(records) == limit else None
        return records, following

    # --- writing -----------------------------------------------------------------------

    def apply(self, operations: Sequence[Operation]) -> list[Result]:
        """Apply the operations in order, `sql.batch` to a transaction; one result each."""
        table = self.table()
        results: list[Result] = []
        size = self.config.batch
        for start in range(0, len(operations), size):
            results += self._chunk(table, operations[start : start + size])
        return results

    def _chunk(self, table: Table, operations: Sequence[Operation]) -> list[Result]:
        try:
            try:
                with self._connected() as conn, conn.begin():
                    return self._write(conn, table, operations)
            except _TRANSIENT:
                raise
            except SQLAlchemyError:
                # one operation refused: each again in a transaction of its own
                return [self._alone(table, operation) for operation in operations]
        except SQLAlchemyError as exc:
            raise self._unavailable("writing", exc) from None

    def _alone(self, table: Table, operation: Operation) -> Result:
        try:
            with self._connected() as conn, conn.begin():
                [result] = self._write(conn, table, [operation])
        except _TRANSIENT:
            raise
        except SQLAlchemyError as exc:
            return Result(REFUSED, None, None, f"the table refused the row: {first_line(exc)}")
        return result

    def _write(
        self, conn: Connection, table: Table, operations: Sequence[Operation]
    ) -> list[Result]:
        """The operations in order in the caller's transaction; the rows they touched
        read back together (a record met twice is read before its second write)."""
        results: list[Result] = []
        for part in _parts(operations):
            changed = [self._statement(conn, table, op) for op in part]
            rows = self._read(conn, table, [op.record_id for op in part])
            results += [
                _answer(op, done, rows.get(op.record_id))
                for op, done in zip(part, changed, strict=True)
            ]
        return results

    def _statement(self, conn: Connection, table: Table, op: Operation) -> bool:
        """Run one operation's statement; whether it changed the row."""
        config = self.config
        key, version = table.c[config.key], table.c[config.version]
        if op.op == "put" and op.if_none_match == "*":
            values = {**(op.fields or {}), config.key: op.record_id, config.version: 1}
            if config.deleted is not None:
                values[config.deleted] = False
            return self._insert(conn, table, values)
        condition: ColumnElement[bool] = key == op.record_id
        if op.if_match is not None:
            expected = _version(op.if_match)
            if expected is None:
                return False  # not a version this table gave: the row is read and answered
            condition = and_(condition, version == expected)
        if config.deleted is not None:
            condition = and_(condition, _live(table, config.deleted))
        bumped = {config.version: version + 1}
        if op.op == "delete":
            if config.deleted is None:
                return bool(conn.execute(delete(table).where(condition)).rowcount)
            statement = update(table).where(condition).values({**bumped, config.deleted: True})
        else:
            statement = update(table).where(condition).values({**(op.fields or {}), **bumped})
        return bool(conn.execute(statement).rowcount)

    def _insert(self, conn: Connection, table: Table, values: dict[str, Any]) -> bool:
        """Insert the row unless a row with one of its unique values is there."""
        name = conn.dialect.name
        if name in ("postgresql", "sqlite"):
            dialect: Any = postgresql if name == "postgresql" else sqlite
            # RETURNING says whether it went in (psycopg's rowcount for it is -1)
            statement = (
                dialect.insert(table)
                .values(values)
                .on_conflict_do_nothing()
                .returning(table.c[self.config.key])
            )
            return conn.execute(statement).first() is not None
        try:  # another database: a savepoint, so that a refusal leaves the rest
            with conn.begin_nested():
                conn.execute(insert(table).values(values))
        except IntegrityError:
            return False
        return True

    # --- rows as records -----------------------------------------------------------------

    def _select(self, table: Table) -> Any:
        # the delivered fields are never the channel's own columns (config.sync)
        return select(*(table.c[n] for n in [*self.config.columns(), *self.fields]))

    def _read(self, conn: Connection, table: Table, record_ids: list[str]) -> dict[str, Remote]:
        key = table.c[self.config.key]
        rows = conn.execute(self._select(table).where(key.in_(sorted(set(record_ids)))))
        return {r.record_id: r for r in map(self._remote, rows.mappings())}

    def _remote(self, row: Any) -> Remote:
        config = self.config
        version = row[config.version]
        deleted = bool(row[config.deleted]) if config.deleted is not None else False
        return Remote(
            str(row[config.key]),
            None if version is None else str(version),
            {f: json_ready(row[f]) for f in self.fields},
            deleted,
            _when(row[config.updated_at]) if config.updated_at is not None else None,
        )

    # --- the database --------------------------------------------------------------------

    def _connected(self) -> Connection:
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise self._unavailable("connecting", exc) from None

    def _unavailable(self, doing: str, exc: SQLAlchemyError) -> Unavailable:
        return Unavailable(f"{self.target}: {doing} at {self.shown_url} failed: {first_line(exc)}")


def _parts(operations: Sequence[Operation]) -> Iterator[list[Operation]]:
    """The operations in runs with each record once, in order."""
    part: list[Operation] = []
    seen: set[str] = set()
    for op in operations:
        if op.record_id in seen:
            yield part
            part, seen = [], set()
        part.append(op)
        seen.add(op.record_id)
    if part:
        yield part


def _answer(op: Operation, changed: bool, row: Remote | None) -> Result:
    """The answer to one operation, from whether its statement changed the row and the
    row as it is now."""
    etag = row.etag if row is not None else None
    if changed:
        if op.op == "delete":
            return Result(204, etag, row, None)
        return Result(201 if op.if_none_match == "*" else 200, etag, row, None)
    if row is None:
        if op.op == "put" and op.if_none_match == "*":
            return Result(
                CLASHED, None, None, "another row holds one of its unique values (not the key)"
            )
        return Result(404, None, None, f"no row {op.record_id!r}")
    state = "is marked deleted" if row.deleted else f"is at version {row.etag}"
    return Result(412, etag, row, f"the row {op.record_id!r} {state}")


def _live(table: Table, deleted: str) -> ColumnElement[bool]:
    column = table.c[deleted]
    return or_(column.is_(None), column == false())


def _version(etag: str) -> int | None:
    try:
        return int(etag.strip('"'))
    except ValueError:
        return None


def _when(value: Any) -> str | None:
    """When the system last changed the row, as ISO 8601 with a zone (UTC when the
    column holds none)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    return None


def _python_type(column: Any) -> type | None:
    """What the column holds, in Python's terms (None when SQLAlchemy cannot say)."""
    try:
        kind: type = column.type.python_type
    except NotImplementedError:
        return None
    return kind


def _unique_columns(conn: Connection, name: str, schema: str | None) -> set[str]:
    """The columns that alone are unique: the primary key's, a unique constraint's or a
    unique index's."""
    found = inspect(conn)
    single: list[list[str]] = [found.get_pk_constraint(name, schema=schema)["constrained_columns"]]
    single += [u["column_names"] for u in found.get_unique_constraints(name, schema=schema)]
    single += [
        [c for c in i["column_names"] if c is not None]
        for i in found.get_indexes(name, schema=schema)
        if i.get("unique")
    ]
    return {columns[0] for columns in single if len(columns) == 1}
