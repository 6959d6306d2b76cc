"""Query plans of the statements some code runs: tests that a read searches by index
instead of scanning (a scan is invisible on test data and costs seconds at a million
records)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, event


def query_plans(engine: Engine, run: Callable[[Connection], Any]) -> list[str]:
    """The query plan of every statement `run(conn)` executes, one line per step:
    SQLite's `EXPLAIN QUERY PLAN`, or PostgreSQL's `EXPLAIN` with sequential scans made
    as dear as they go, so that an index that can serve the query is chosen on a test's
    few rows."""
    seen: list[tuple[str, Any]] = []

    def note(*args: Any) -> None:
        seen.append((args[2], args[3]))

    event.listen(engine, "before_cursor_execute", note)
    try:
        with engine.connect() as conn:
            run(conn)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    found: list[str] = []
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain, column = "EXPLAIN ", 0
        else:
            explain, column = "EXPLAIN QUERY PLAN ", 3
        for sql, params in seen:
            found += [str(r[column]) for r in conn.exec_driver_sql(explain + sql, params)]
    return found
