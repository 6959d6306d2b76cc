"""SQLite's query plans of the statements some code runs: tests that a read searches by
index instead of scanning (a scan is invisible on test data and costs seconds at a
million records)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, event


def query_plans(engine: Engine, run: Callable[[Connection], Any]) -> list[str]:
    """SQLite's query plan of every statement `run(conn)` executes, one line per step."""
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
        for sql, params in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
            found += [str(r[3]) for r in rows]
    return found
