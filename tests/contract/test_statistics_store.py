"""Planner statistics after bulk writes (`store.dialect.refresh_statistics`): on
PostgreSQL a load or a full resolve that changes a good share of a table analyzes it, so
that incremental matching's lookups are planned for the rows there are (a resolve into
empty tables left the planner believing them empty, and matching ran at half its speed);
a small change leaves the statistics alone, as autovacuum would. SQLite keeps none."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from accord.config import load_project
from accord.golden import resolve as resolving
from accord.golden.resolve import resolve
from accord.intake import load as loading
from accord.intake.load import load_file
from accord.runtime import worker
from accord.store.dialect import autovacuum_off, refresh_statistics
from accord.store.tables import crosswalk, record_head
from tests.factories import crm_row, write_csv


def _planned_rows(engine: Engine, table: str) -> float | None:
    """What PostgreSQL's planner believes `table` holds (-1: never analyzed), or None on
    SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
        ).scalar_one()


def _sqlite_stats_kept(engine: Engine) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name LIKE 'sqlite_stat%'")
            ).scalar_one()
            > 0
        )


def _rows(count: int) -> list[dict[str, str]]:
    return [
        crm_row(f"C{i}", Email=f"person{i}@example.org", Phone="", LastName=f"Name{i}")
        for i in range(count)
    ]


def test_a_load_and_a_resolve_leave_the_planner_knowing_what_they_wrote(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    report = load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", _rows(120)), actor="t")
    assert report.new == 120
    resolved = resolve(engine, project, actor="test")
    assert len(resolved.assignment) == 120

    if engine.dialect.name == "sqlite":
        assert not _sqlite_stats_kept(engine)  # SQLite plans by its indexes alone
        return
    assert _planned_rows(engine, record_head.name) == 120
    assert _planned_rows(engine, crosswalk.name) == 120
    assert {t.name for t in loading.WRITTEN} >= {"record_head", "canonical_record"}
    assert {t.name for t in resolving.WRITTEN} >= {"match_entry", "crosswalk", "golden_record"}


def test_a_small_change_to_a_large_table_leaves_its_statistics_alone(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    load_file(engine, project, "crm", write_csv(tmp_path / "a.csv", _rows(1000)), actor="t")
    rows = _rows(1010)
    load_file(engine, project, "crm", write_csv(tmp_path / "b.csv", rows), actor="t")  # 10 new

    # 10 rows more in a table of 1,000: under autovacuum's 50 plus a tenth
    assert _planned_rows(engine, record_head.name) in (None, 1000)
    # 200 rows: over it
    analyzed = refresh_statistics(engine, [record_head, crosswalk], 200)
    if engine.dialect.name == "sqlite":
        assert analyzed == []
        assert not _sqlite_stats_kept(engine)
    else:
        assert analyzed == ["record_head", "crosswalk"]  # crosswalk: empty, so any change counts
        assert _planned_rows(engine, record_head.name) == 1010
        assert refresh_statistics(engine, [record_head], 0) == []


def test_a_worker_warns_when_postgresql_would_leave_its_statistics_stale(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            off = conn.execute(text("SHOW autovacuum")).scalar() == "off"
    else:
        off = False  # SQLite keeps no statistics to go stale
    assert autovacuum_off(engine) is off
    worker._warned.clear()
    with caplog.at_level(logging.WARNING, logger="accord.runtime.worker"):
        worker._warn_if_unmaintained(engine)
        worker._warn_if_unmaintained(engine)  # once per database and process
    warnings = [r.getMessage() for r in caplog.records if "autovacuum is off" in r.getMessage()]
    assert len(warnings) == (1 if off else 0)
