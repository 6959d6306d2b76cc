"""A peer's own store: one SQLite file holding its records, the idempotency keys it has
applied, and a log of every write.

Every write takes the next `change_seq` (one counter for the whole peer, deletes
included) inside a `BEGIN IMMEDIATE` transaction. SQLite has one writer at a time, so
writes commit in `change_seq` order and a reader that polls `record` by the watermark
`change_seq > last seen` never skips a row that commits late.

A write is described by an `Operation` and answered by an `Outcome`, the same for a
single request and for one operation of a batch; the web layer only renders outcomes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

MAX_RECORD_BYTES = 64 * 1024  # a record's fields, as JSON

Op = Literal["put", "delete"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS record (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,              -- the fields, a JSON object (kept on a tombstone)
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,        -- ISO 8601, UTC
    change_seq INTEGER NOT NULL      -- the peer-wide sequence number of its last write
);
CREATE UNIQUE INDEX IF NOT EXISTS record_change_seq ON record (change_seq);
CREATE TABLE IF NOT EXISTS applied (
    key TEXT PRIMARY KEY,            -- an Idempotency-Key
    record_id TEXT NOT NULL,
    op TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,          -- the answer given, replayed as it was
    at TEXT NOT NULL,
    seq INTEGER,                     -- the change_seq of the write it made, if any
    request TEXT NOT NULL            -- a digest of op, id and fields, to refuse reuse
);
CREATE TABLE IF NOT EXISTS change_log (
    seq INTEGER PRIMARY KEY,         -- = the record's change_seq after this write
    record_id TEXT NOT NULL,
    op TEXT NOT NULL,
    key TEXT,
    version INTEGER NOT NULL,
    fields TEXT,                     -- the fields written; NULL for a delete
    at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Condition:
    """An If-Match or If-None-Match precondition: `*` or a list of entity tags, each
    compared strongly with the record's current ETag."""

    any: bool = False
    tags: frozenset[str] = frozenset()

    def matches(self, version: int | None) -> bool:
        """Whether a record whose current version is `version` (None: there is no live
        record) meets this list."""
        if version is None:
            return False
        return self.any or etag(version) in self.tags


@dataclass(frozen=True)
class Operation:
    """One write: a put (full replacement of `fields`) or a delete of the record `id`."""

    op: Op
    id: str
    fields: dict[str, Any] | None = None  # put only
    if_match: Condition | None = None
    if_none_match: Condition | None = None
    key: str | None = None  # an Idempotency-Key

    def digest(self) -> str:
        """What a retry with the same key must repeat: the operation, the id, the fields."""
        text = json.dumps([self.op, self.id, self.fields], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    id: str
    fields: dict[str, Any]
    version: int
    deleted: bool
    updated_at: str
    change_seq: int

    @property
    def etag(self) -> str:
        return etag(self.version)

    def as_dict(self) -> dict[str, Any]:
        """The record as the API shows it; a tombstone shows no fields."""
        return {
            "id": self.id,
            "fields": None if self.deleted else self.fields,
            "version": self.version,
            "deleted": self.deleted,
            "updated_at": self.updated_at,
            "change_seq": self.change_seq,
        }


@dataclass(frozen=True)
class Outcome:
    """The answer to one write: its HTTP status, the record's ETag after it (if there is
    a record), and either the record (success) or an error body."""

    status: int
    etag: str | None = None
    record: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    replayed: bool = False  # the stored answer to an earlier request with the same key
    seq: int | None = field(default=None, compare=False)  # the change_seq written, if any

    def stored(self) -> str:
        return json.dumps({"etag": self.etag, "record": self.record, "error": self.error})

    @classmethod
    def restored(cls, status: int, response: str) -> Outcome:
        kept = json.loads(response)
        return cls(status, kept["etag"], kept["record"], kept["error"], replayed=True)


@dataclass(frozen=True)
class LogEntry:
    seq: int
    id: str
    op: Op
    key: str | None
    version: int
    fields: dict[str, Any] | None
    at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "op": self.op,
            "key": self.key,
            "version": self.version,
            "fields": self.fields,
            "at": self.at,
        }


def etag(version: int) -> str:
    """The strong ETag of a record's version: the number in quotes."""
    return f'"{version}"'


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error body: a code a program can test, a message a person can read."""
    return {"error": code, "message": message, **extra}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def fields_text(fields: dict[str, Any]) -> str:
    """Fields as stored: compact JSON, keys in the order given."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _canonical(fields: dict[str, Any]) -> str:
    # 1, 1.0 and true are equal in Python but different JSON: compare the text
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, allow_nan=False)


class PeerStore:
    """The peer's SQLite file, behind one connection and a lock: the peer is one
    process, and its requests take turns (each is a few statements)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL loses nothing when the process is killed, only on power loss
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    # reads

    def get(self, record_id: str) -> Record | None:
        """The record `record_id`, a tombstone if it was deleted, None if it never was."""
        with self._reading() as conn:
            return _record(conn, record_id)

    def page(self, after: str | None, limit: int, *, include_deleted: bool) -> list[Record]:
        """Up to `limit` records in id order, those after `after` (exclusive)."""
        query = "SELECT id, data, version, deleted, updated_at, change_seq FROM record"
        where: list[str] = []
        params: list[Any] = []
        if after is not None:
            where.append("id > ?")
            params.append(after)
        if not include_deleted:
            where.append("deleted = 0")
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id LIMIT ?"
        params.append(limit)
        with self._reading() as conn:
            return [_from_row(row) for row in conn.execute(query, params)]

    def log(self, after_seq: int, limit: int) -> list[LogEntry]:
        """Up to `limit` writes after `after_seq`, in the order they were made."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, record_id, op, key, version, fields, at FROM change_log"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [
            LogEntry(seq, rid, op, key, version, None if data is None else json.loads(data), at)
            for seq, rid, op, key, version, data, at in rows
        ]

    # writes

    def apply(self, operations: Sequence[Operation]) -> list[Outcome]:
        """Apply `operations` in order, in one transaction, and return each one's outcome.
        An operation that fails (a precondition, a missing record) changes nothing and
        does not stop the rest."""
        with self._writing() as conn:
            return [_apply(conn, operation, now()) for operation in operations]

    def reset(self) -> None:
        """Forget everything: records, keys, the log; the sequence starts again at 1."""
        with self._writing() as conn:
            for table in ("record", "applied", "change_log"):
                conn.execute(f"DELETE FROM {table}")  # fixed table names


def _from_row(row: tuple[Any, ...]) -> Record:
    record_id, data, version, deleted, updated_at, change_seq = row
    return Record(record_id, json.loads(data), version, bool(deleted), updated_at, change_seq)


def _record(conn: sqlite3.Connection, record_id: str) -> Record | None:
    row = conn.execute(
        "SELECT id, data, version, deleted, updated_at, change_seq FROM record WHERE id = ?",
        (record_id,),
    ).fetchone()
    return None if row is None else _from_row(row)


def _apply(conn: sqlite3.Connection, operation: Operation, at: str) -> Outcome:
    if operation.key is None:
        return _write(conn, operation, at)
    digest = operation.digest()
    kept = conn.execute(
        "SELECT record_id, op, status, response, request FROM applied WHERE key = ?",
        (operation.key,),
    ).fetchone()
    if kept is not None:
        record_id, op, status, response, request = kept
        if request != digest:
            return Outcome(
                422,
                error=error(
                    "idempotency_key_reused",
                    f"Idempotency-Key {operation.key!r} was used for another request "
                    f"({op} of {record_id!r}); a retry must repeat the operation, the id "
                    "and the fields",
                ),
            )
        return Outcome.restored(status, response)
    outcome = _write(conn, operation, at)
    conn.execute(
        "INSERT INTO applied (key, record_id, op, status, response, at, seq, request)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            operation.key,
            operation.id,
            operation.op,
            outcome.status,
            outcome.stored(),
            at,
            outcome.seq,
            digest,
        ),
    )
    return outcome


def _write(conn: sqlite3.Connection, operation: Operation, at: str) -> Outcome:
    current = _record(conn, operation.id)
    live = None if current is None or current.deleted else current.version
    if operation.if_match is not None and not operation.if_match.matches(live):
        return _precondition_failed(current, "If-Match", operation.id)
    if operation.if_none_match is not None and operation.if_none_match.matches(live):
        return _precondition_failed(current, "If-None-Match", operation.id)
    if operation.op == "put":
        if operation.fields is None:
            raise ValueError(f"a put of {operation.id!r} needs its fields")
        return _put(conn, operation, operation.fields, current, at)
    return _delete(conn, operation, current, at)


def _precondition_failed(current: Record | None, header: str, record_id: str) -> Outcome:
    if current is None:
        state = "does not exist"
    elif current.deleted:
        state = f"was deleted (tombstone at version {current.version})"
    else:
        state = f"is at version {current.version}"
    return Outcome(
        412,
        etag=None if current is None else current.etag,
        error=error(
            "precondition_failed",
            f"{header} does not hold: record {record_id!r} {state}",
            current=None if current is None else current.as_dict(),
            etag=None if current is None else current.etag,
        ),
    )


def _put(
    conn: sqlite3.Connection,
    operation: Operation,
    fields: dict[str, Any],
    current: Record | None,
    at: str,
) -> Outcome:
    text = fields_text(fields)
    size = len(text.encode())
    if size > MAX_RECORD_BYTES:
        return Outcome(
            413,
            error=error(
                "record_too_large",
                f"the fields of record {operation.id!r} are {size:,} bytes of JSON; "
                f"the limit is {MAX_RECORD_BYTES:,}",
            ),
        )
    if (
        current is not None
        and not current.deleted
        and _canonical(current.fields) == _canonical(fields)
    ):
        return Outcome(200, current.etag, current.as_dict())  # a no-op: no new change
    seq = _next_seq(conn)
    version = 1 if current is None else current.version + 1
    conn.execute(
        "INSERT INTO record (id, data, version, deleted, updated_at, change_seq)"
        " VALUES (?, ?, ?, 0, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET data = excluded.data, version = excluded.version,"
        " deleted = 0, updated_at = excluded.updated_at, change_seq = excluded.change_seq",
        (operation.id, text, version, at, seq),
    )
    _log(conn, operation, seq=seq, version=version, fields=text, at=at)
    record = Record(operation.id, fields, version, False, at, seq)
    created = current is None or current.deleted
    return Outcome(201 if created else 200, record.etag, record.as_dict(), seq=seq)


def _delete(
    conn: sqlite3.Connection, operation: Operation, current: Record | None, at: str
) -> Outcome:
    if current is None:
        return Outcome(
            404, error=error("not_found", f"there is no record {operation.id!r} to delete")
        )
    if current.deleted:
        return Outcome(204, current.etag, current.as_dict())  # already gone: no new change
    seq = _next_seq(conn)
    version = current.version + 1
    conn.execute(
        "UPDATE record SET deleted = 1, version = ?, updated_at = ?, change_seq = ? WHERE id = ?",
        (version, at, seq, operation.id),
    )
    _log(conn, operation, seq=seq, version=version, fields=None, at=at)
    tombstone = Record(operation.id, current.fields, version, True, at, seq)
    return Outcome(204, tombstone.etag, tombstone.as_dict(), seq=seq)


def _next_seq(conn: sqlite3.Connection) -> int:
    # the log keeps every write, so its highest seq is the last one given out
    last = conn.execute("SELECT MAX(seq) FROM change_log").fetchone()[0]
    return int(last or 0) + 1


def _log(
    conn: sqlite3.Connection,
    operation: Operation,
    *,
    seq: int,
    version: int,
    fields: str | None,
    at: str,
) -> None:
    conn.execute(
        "INSERT INTO change_log (seq, record_id, op, key, version, fields, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seq, operation.id, operation.op, operation.key, version, fields, at),
    )
