"""Mapping on other processes (`intake/parallel.py`): the same load as in one process."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from accord.config import load_project
from accord.demo.generator import generate
from accord.demo.run import inputs
from accord.intake.load import LoadReport, load_file
from accord.intake.mapping import RecordMapper
from accord.intake.parallel import PARALLEL_FROM, MappingPool, WorkerLost, workers_for
from accord.intake.readers import SourceFile
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from accord.store.tables import canonical_record, quarantine, record_head, source_record


def _stored(engine: Engine) -> dict[str, Any]:
    """What a load left, without ids and times (which differ between two stores)."""
    with engine.connect() as conn:
        return {
            "sources": sorted(
                conn.execute(
                    select(
                        source_record.c.system,
                        source_record.c.source_id,
                        source_record.c.version,
                        source_record.c.content_hash,
                    )
                ).all()
            ),
            "canonical": sorted(
                (r.system, r.source_id, r.mapping_version, repr(r.data), repr(r.issues))
                for r in conn.execute(select(canonical_record))
            ),
            "heads": sorted(
                conn.execute(
                    select(record_head.c.system, record_head.c.source_id, record_head.c.version)
                ).all()
            ),
            "quarantine": sorted(
                (r.location, r.source_id, repr(r.reasons)) for r in conn.execute(select(quarantine))
            ),
        }


def _load(root: Path, store: Path, data: Path, workers: int) -> tuple[list[LoadReport], Any]:
    engine = make_engine(f"sqlite:///{store}")
    upgrade(engine)
    project = load_project(root)
    reports = [
        load_file(engine, project, system, path, actor="test", batch_size=97, workers=workers)
        for system, path in inputs(data)
    ]
    stored = _stored(engine)
    engine.dispose()
    return reports, stored


def test_mapping_on_two_processes_loads_what_one_process_loads(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    generate(data, seed=3, customers=300)  # every system, with its deliberately bad rows

    alone, stored_alone = _load(demo_project_dir, tmp_path / "one.sqlite3", data, workers=0)
    shared, stored_shared = _load(demo_project_dir, tmp_path / "two.sqlite3", data, workers=2)

    assert [r.counts() | {"seconds": 0} for r in shared] == [
        r.counts() | {"seconds": 0} for r in alone
    ]
    assert stored_shared == stored_alone
    assert sum(r.quarantined for r in alone) > 0  # the bad rows went the same way too
    assert sum(r.new for r in alone) > 700


def test_small_files_are_mapped_in_the_storing_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_LOAD_WORKERS", raising=False)
    assert workers_for(PARALLEL_FROM - 1, None) == 0  # a small file: not worth starting them
    assert workers_for(PARALLEL_FROM, None) == max(1, min((os.cpu_count() or 1) - 1, 8))
    assert workers_for(10, 3) == 3  # asked for by the caller: always
    assert workers_for(10**9, 1) == 1
    assert workers_for(10**9, 0) == 0
    assert workers_for(10**9, 99) == 8
    monkeypatch.setenv("ACCORD_LOAD_WORKERS", "0")
    assert workers_for(10**9, None) == 0
    monkeypatch.setenv("ACCORD_LOAD_WORKERS", "2")
    assert workers_for(10, None) == 2  # set: whatever the size
    assert workers_for(10**9, 0) == 0


def test_a_mapping_process_that_dies_fails_the_load_with_what_to_do(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    generate(data, seed=3, customers=50)
    project = load_project(demo_project_dir)
    mapping = project.mapping("crm")
    mapper = RecordMapper(mapping, project.config.systems["crm"])
    records = list(SourceFile(data / "crm.csv", mapping.config.format, mapper.source_columns()))
    batches = [records[i : i + 10] for i in range(0, len(records), 10)]

    with MappingPool(mapping, project.config.systems["crm"], 2) as pool:
        mapped = pool.map(batches)
        first, _ = next(mapped)  # the workers are up
        assert first == batches[0]
        for process in pool._executor._processes.values():  # type: ignore[attr-defined]
            os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(WorkerLost) as lost:
            list(mapped)
    assert "load the file again" in (lost.value.hint or "")
