"""Golden records built on a process of their own (`golden.parallel`) beside a full
resolve's writes, on SQLite and PostgreSQL: the same customers, golden records,
crosswalk, outbox changes and audit as built in the resolving process, from scratch,
on a re-run that changes nothing, and on one that changes some customers. Records read
and index keys worked out beside likewise."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from accord.config import load_project
from accord.config.loader import Project
from accord.demo.generator import CRM_FILE, generate
from accord.demo.run import inputs, write_project
from accord.golden import resolve as resolve_module
from accord.golden.content import golden_content, member_of
from accord.golden.parallel import ContentLost, ContentPool, ReadingLost, ReadPool, read_documents
from accord.golden.resolve import GOLDEN_COLUMNS, ResolveReport, resolve
from accord.golden.survivorship import Survivorship
from accord.intake.load import load_file
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from accord.store.records import CurrentDocument, current_documents
from accord.store.tables import (
    audit_log,
    crosswalk,
    golden_change,
    golden_record,
    match_count,
    match_entry,
    match_key,
)
from tests.migrated import store_at


def _state(engine: Engine) -> dict[str, Any]:
    """What a resolve wrote, without the times it wrote it at."""
    with engine.connect() as conn:
        golden = [
            {k: v for k, v in row._mapping.items() if k not in {"created_at", "updated_at"}}
            for row in conn.execute(select(golden_record).order_by(golden_record.c.golden_id))
        ]
        links = conn.execute(
            select(crosswalk.c.system, crosswalk.c.source_id, crosswalk.c.golden_id,
                   crosswalk.c.rule, crosswalk.c.evidence)
            .order_by(crosswalk.c.system, crosswalk.c.source_id)
        ).all()  # fmt: skip
        changes = conn.execute(
            select(golden_change.c.golden_id, golden_change.c.change, golden_change.c.data,
                   golden_change.c.sources, golden_change.c.fields)
            .order_by(golden_change.c.id)
        ).all()  # fmt: skip
        entries = conn.execute(
            select(match_entry.c.system, match_entry.c.source_id, match_entry.c.features,
                   match_entry.c.digest)
            .order_by(match_entry.c.system, match_entry.c.source_id)
        ).all()  # fmt: skip
        keys = conn.execute(
            select(match_entry.c.system, match_entry.c.source_id, match_key.c.key_hash)
            .join(match_key, match_key.c.entry_id == match_entry.c.id)
            .order_by(match_entry.c.system, match_entry.c.source_id, match_key.c.key_hash)
        ).all()
        counts = conn.execute(select(match_count).order_by(match_count.c.key_hash)).all()
        audit = conn.execute(
            select(audit_log.c.action, audit_log.c.subject_id, audit_log.c.details)
            .where(audit_log.c.action.like("golden.%"))
            .order_by(audit_log.c.seq)
        ).all()
    return {
        "golden": golden,
        "links": links,
        "changes": changes,
        "audit": audit,
        "index": (entries, keys, counts),
    }


def _counts(report: ResolveReport) -> tuple[int, int, int]:
    return report.created, report.updated, report.unchanged


def _in_step_with_survivorship(engine: Engine, project: Project) -> int:
    """Every active golden record is what survivorship makes of its members here, in
    this process; returns how many there are."""
    survivorship = Survivorship(project.config.survivorship, project.config.systems)
    with engine.connect() as conn:
        documents = {(d.system, d.source_id): d for d in current_documents(conn, "customer")}
        groups: dict[str, list[Any]] = {}
        for system, source_id, golden_id in conn.execute(
            select(crosswalk.c.system, crosswalk.c.source_id, crosswalk.c.golden_id)
        ):
            groups.setdefault(golden_id, []).append(documents[(system, source_id)])
        rows = conn.execute(select(golden_record).where(golden_record.c.status == "active"))
        for row in rows:
            members = [member_of(d.record()) for d in groups[row.golden_id]]
            here = golden_content(survivorship, members)
            stored = {name: getattr(row, name) for name in GOLDEN_COLUMNS}
            assert stored == {name: here[name] for name in GOLDEN_COLUMNS}, row.golden_id
    return len(groups)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_golden_records_built_beside_are_what_survivorship_makes_here(
    backend: str, demo_project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(demo_project_dir)
    data = tmp_path / "data"
    generate(data, seed=13, customers=150)
    monkeypatch.setenv("ACCORD_RESOLVE_WORKERS", "1")
    with store_at("0020", backend, tmp_path) as store:
        for system, path in inputs(data):
            load_file(store, project, system, path, actor="t")
        first = resolve(store, project, actor="t")
        customers = _in_step_with_survivorship(store, project)
        assert _counts(first) == (customers, 0, 0) and customers > 100
        again = resolve(store, project, actor="t")
        assert _counts(again) == (0, 0, customers)
        load_file(store, project, "crm", _moved(data, tmp_path), actor="t")
        third = resolve(store, project, actor="t")
        assert third.updated > 10
        assert _in_step_with_survivorship(store, project) == third.golden_records
        changes = _state(store)["changes"]
        updates = [c for c in changes if c.change == "updated"]
        assert len(updates) == third.updated
        # each update names the fields whose values changed since the customer's last change
        last: dict[str, dict[str, Any]] = {}
        for c in changes:
            if c.change == "updated":
                was = last[c.golden_id]
                assert c.fields == sorted(
                    k for k in c.data.keys() | was.keys() if c.data.get(k) != was.get(k)
                )
                assert c.sources
            last[c.golden_id] = c.data
        assert sum("city" in c.fields for c in updates) > 10


@pytest.mark.parametrize("engine_kind", ["rules", "learned"])
def test_a_resolve_writes_the_same_with_work_done_beside_or_here(
    engine_kind: str, demo_project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of one SQLite store (the same records, received at the same times),
    resolved each way three times: every row written is the same, golden records and
    (with the learned engine, whose match index keys are worked out beside) the index.
    Records are read in pages of 37, so that pages read beside come back in order."""
    monkeypatch.setattr(resolve_module, "READ_PAGE", 37)
    if engine_kind == "learned":
        write_project(tmp_path / "learned")
        project = load_project(tmp_path / "learned")
    else:
        project = load_project(demo_project_dir)
    data = tmp_path / "data"
    generate(data, seed=13, customers=150)
    loaded = tmp_path / "loaded.sqlite3"
    engine = make_engine(f"sqlite:///{loaded}")
    upgrade(engine)
    for system, path in inputs(data):
        load_file(engine, project, system, path, actor="t")
    moved = _moved(data, tmp_path)
    engine.dispose()
    states = {}
    for workers in ("0", "1"):
        monkeypatch.setenv("ACCORD_RESOLVE_WORKERS", workers)
        copy = tmp_path / f"copy-{workers}.sqlite3"
        shutil.copy(loaded, copy)
        store = make_engine(f"sqlite:///{copy}")
        reports = [_counts(resolve(store, project, actor="t"))]
        reports.append(_counts(resolve(store, project, actor="t")))
        load_file(store, project, "crm", moved, actor="t")
        reports.append(_counts(resolve(store, project, actor="t")))
        states[workers] = (reports, _state(store))
        store.dispose()
    assert states["1"] == states["0"]
    assert bool(states["1"][1]["index"][0]) == (engine_kind == "learned")


def _moved(data: Path, folder: Path) -> Path:
    """The demo CRM export again, with every city written anew."""
    with (data / CRM_FILE).open(encoding="utf-8", newline="") as src:
        rows = list(csv.DictReader(src))
    for row in rows:
        row["City"] = (row["City"] or "Ort") + "x"
    moved = folder / "crm-moved.csv"
    with moved.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return moved


def test_a_pool_whose_process_dies_says_so(tmp_path: Path, demo_project_dir: Path) -> None:
    """The process building golden records killed mid-resolve: a clear error, which the
    resolve's transaction turns into nothing written."""
    project = load_project(demo_project_dir)
    config = project.config
    record = CurrentDocument("crm", "1", 1, 1, "crm@v1", '{"kind": "person"}', datetime.now(UTC))
    with ContentPool(config.survivorship, config.systems, [record], [[0]]) as pool:
        (_, built), *_ = pool.build([[(0, {})]])
        assert built[0]["member_count"] == 1
        pool._executor.submit(_exit)  # the worker exits at its next task
        with pytest.raises(ContentLost, match="stopped in the middle"):
            list(pool.build([[(0, {})], [(0, {})], [(0, {})], [(0, {})]]))


def test_a_read_pool_whose_process_dies_says_so() -> None:
    """The process reading records killed mid-resolve: a clear error, before anything of
    the resolve is written."""
    record = CurrentDocument(
        "crm", "1", 1, 1, "crm@v1", '{"kind": "person", "email": "a@x.org"}', datetime.now(UTC)
    )
    with ReadPool() as pool:
        ((page, kept),) = pool.read([[record]])
        assert page == [record]
        assert kept == read_documents([record.document])
        assert kept[0][:2] == ({"email": "a@x.org"}, "person")
        pool._executor.submit(_exit)  # the worker exits at its next task
        with pytest.raises(ReadingLost, match="stopped in the middle") as caught:
            list(pool.read([[record]] * 4))
        assert "ACCORD_RESOLVE_WORKERS=0" in (caught.value.hint or "")


def _exit() -> None:
    import os  # noqa: PLC0415

    os._exit(1)
