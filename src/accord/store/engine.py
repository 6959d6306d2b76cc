"""Creating the engine: SQLite by default, PostgreSQL when ACCORD_DATABASE_URL says so."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

from accord.errors import AccordError


def default_database_url(project_dir: Path) -> str:
    """The embedded default: a SQLite file inside the project's `.accord/` folder."""
    state = project_dir / ".accord"
    state.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state / 'accord.sqlite3').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite set up for one writer and many readers (WAL).
    JSON columns are written by `json_text` and read by `json_value`: orjson wherever it
    gives the standard library's text and values."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            json_serializer=json_text,
            json_deserializer=json_value,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Let us issue BEGIN ourselves so that a write transaction takes its lock
            # at the start instead of failing to upgrade a read lock half-way.
            isolation_level=None,
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if url.startswith("postgresql"):
        if not url.startswith("postgresql+psycopg"):
            raise AccordError(
                f"unsupported PostgreSQL driver in {_redact(url)}",
                hint="use postgresql+psycopg://user@host:5432/dbname (psycopg 3)",
            )
        return create_engine(
            url, pool_pre_ping=True, json_serializer=json_text, json_deserializer=json_value
        )
    raise AccordError(
        f"unsupported database URL {_redact(url)}",
        hint="use sqlite:///path/to/file.sqlite3 or postgresql+psycopg://user@host/db",
    )


_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


class JSONText(str):
    """A JSON column's value written as text already (by `json_text`), stored as it is:
    for a document held a long while before it is written, which takes a fraction of the
    memory as text (a full resolve's explanations of the pairs it queues for review)."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Any) -> JSONText:
        return cls(json_text(value))


def json_text(value: Any) -> str:
    """A JSON column's value as text: the document the standard library would write
    (the same values; only the spacing differs), through orjson where that gives it:
    several times faster on the large
    documents a resolve writes (golden records and their lineage). The standard library
    takes over for what orjson declines (integers beyond 64 bits) and wherever orjson
    wrote a null, since orjson also writes NaN and infinities as null, which the standard
    library keeps. So both refuse the same values (datetimes, sets) and read back the
    same. (Reading them back goes through `json_value`.)"""
    if type(value) is JSONText:
        return value
    try:
        text = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, ensure_ascii=False)
    if b"null" in text:
        return json.dumps(value, ensure_ascii=False)
    return text.decode()


# a run of digits that may be an integer beyond 64 bits, which orjson reads as a float
_LONG_NUMBER = re.compile(r"[0-9]{19}")
_LONG_NUMBER_BYTES = re.compile(rb"[0-9]{19}")


def json_value(text: str | bytes, *, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """A JSON document (bytes are UTF-8), as the standard library reads it, through
    orjson where that gives the same value: several times faster on the million
    documents a full resolve reads, and on request bodies. The standard library reads
    what orjson refuses (NaN and infinities, lone surrogates; it raises the error to
    report, with its line and column) and any document with a run of 19 digits, which
    could be an integer beyond 64 bits: orjson would make it a float, the standard
    library keeps it exact. `parse_constant` is the standard library's: it is handed
    NaN and Infinity (to refuse them, say); orjson refuses them itself."""
    found = (
        _LONG_NUMBER_BYTES.search(text) if isinstance(text, bytes) else _LONG_NUMBER.search(text)
    )
    if found is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_constant=parse_constant)


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # Copy the write-ahead log into the database every 8,000 pages (32 MiB) rather than
    # every 1,000: a load writes about 2 MiB per batch, and checkpointing after nearly
    # every batch cost a sixth of a bulk load's time (benchmarks/load.py).
    cursor.execute("PRAGMA wal_autocheckpoint=8000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # Write units (see `writing`) take SQLite's write lock up front; reads stay deferred
    # so that, under WAL, they never wait for a writer.
    if connection.get_execution_options().get("accord_write"):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


@contextmanager
def _writer_turn(engine: Engine) -> Iterator[None]:
    """On SQLite, one write transaction at a time per engine in this process, in turn:
    SQLite lets one writer in and has the others poll with growing sleeps, so under a
    steady stream of writes (pushes from several clients) a waiting one could lose again
    and again and wait seconds. Threads queue here instead; other processes still meet
    at SQLite's lock. Re-entrant, so a thread that nests writes fails as it did before
    (SQLite's busy timeout), not by waiting for itself. Nothing to do on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _WRITERS_LOCK:
        lock = _WRITERS.setdefault(engine, threading.RLock())
    with lock:
        yield


@contextmanager
def writing(engine: Engine, *, cache_mib: int | None = None) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on error. With
    `cache_mib`, SQLite keeps that much of the database in its page cache for the
    transaction (the default is 2 MiB): a resolve inserts millions of rows into indexes
    in no particular order, and with a small cache most inserts read a page back from
    disk. The cache goes back to the default afterwards."""
    with _writer_turn(engine), engine.connect() as conn:
        # on the driver's connection: through SQLAlchemy, the PRAGMA would begin the
        # transaction before BEGIN IMMEDIATE could
        driver: Any = conn.connection.driver_connection
        sized = cache_mib is not None and conn.dialect.name == "sqlite"
        if sized:
            driver.execute(f"PRAGMA cache_size = -{int(cache_mib or 0) * 1024}")
        try:
            conn.execution_options(accord_write=True)
            with conn.begin():
                yield conn
        finally:
            if sized:
                driver.execute("PRAGMA cache_size = -2000")


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url


def shown_url(url: str) -> str:
    """A database URL without its password, for messages ("(not a URL)" if it is none)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def first_line(exc: BaseException) -> str:
    """The first line of a database error's own message (the driver's, when wrapped)."""
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
