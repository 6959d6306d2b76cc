"""Creating the engine: SQLite by default, PostgreSQL when ACCORD_DATABASE_URL says so."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from accord.errors import AccordError


def default_database_url(project_dir: Path) -> str:
    """The embedded default: a SQLite file inside the project's `.accord/` folder."""
    state = project_dir / ".accord"
    state.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(state / 'accord.sqlite3').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite set up for one writer and many readers (WAL)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
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
        return create_engine(url, pool_pre_ping=True)
    raise AccordError(
        f"unsupported database URL {_redact(url)}",
        hint="use sqlite:///path/to/file.sqlite3 or postgresql+psycopg://user@host/db",
    )


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
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


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on error."""
    with engine.connect() as conn:
        conn.execution_options(accord_write=True)
        with conn.begin():
            yield conn


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
