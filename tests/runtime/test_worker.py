"""The matching worker (`runtime/worker.py`) end to end on both stores, over the demo
company without its service desk, fully resolved (`tests/golden/test_incremental.py`
builds it): loading the service desk queues its records, and the worker matches them.

It matches them as an incremental resolve does; a full resolve empties the queue it
covered; without a model it falls back to a full resolve; a record that fails is retried
alone while the others go on; and a worker process killed with SIGKILL in the middle of a
batch, then run again, ends exactly where an undisturbed run ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, update

from accord.demo.run import inputs
from accord.golden.incremental import IncrementalResolver, resolve_changes
from accord.govern import audit
from accord.govern.permissions import cli_actor
from accord.intake.load import load_file
from accord.runtime.health import health_report
from accord.runtime.worker import MatchWorker
from accord.store import queue
from accord.store import records as record_store
from accord.store.engine import writing
from accord.store.tables import crosswalk, golden_record, match_wait, record_head, work_item
from accord.store.types import utcnow
from tests.golden.test_incremental import (
    HELD_OUT,
    Based,
    _based,
    _dump,
    _restore,
    demo,  # noqa: F401  (the module's fixture)
)
from tests.golden.test_incremental import Demo as DemoData

Key = tuple[str, str]


@pytest.fixture
def based(engine: Engine, demo: DemoData, tmp_path: Path) -> Based:  # noqa: F811
    return _based(engine, demo, demo.project(), tmp_path)


def _load_held_out(based: Based) -> int:
    [(_, path)] = [(s, p) for s, p in inputs(based.demo.data) if s == HELD_OUT]
    report = load_file(based.engine, based.project, HELD_OUT, path, actor="test")
    return report.new


def _assignment(engine: Engine) -> dict[Key, str]:
    with engine.connect() as conn:
        return {
            (r.system, r.source_id): r.golden_id
            for r in conn.execute(
                select(crosswalk.c.system, crosswalk.c.source_id, crosswalk.c.golden_id)
            )
        }


def _golden(engine: Engine) -> dict[str, tuple[str, Any]]:
    with engine.connect() as conn:
        return {
            r.golden_id: (r.status, r.fingerprint)
            for r in conn.execute(
                select(
                    golden_record.c.golden_id, golden_record.c.status, golden_record.c.fingerprint
                )
            )
        }


def _backlog(engine: Engine) -> int:
    with engine.connect() as conn:
        return queue.backlog(conn)


def test_a_full_resolve_leaves_nothing_queued(based: Based) -> None:
    assert _backlog(based.engine) == 0


def test_loading_queues_each_new_record_once(based: Based) -> None:
    new = _load_held_out(based)
    assert new > 20
    assert _backlog(based.engine) == new
    _load_held_out(based)  # the same file again: nothing changed, nothing queued
    assert _backlog(based.engine) == new


def test_the_worker_matches_queued_records_as_an_incremental_resolve_does(
    based: Based,
) -> None:
    engine = based.engine
    _load_held_out(based)
    before = _dump(engine)
    with engine.connect() as conn:
        order = [
            (r.system, r.source_id)
            for r in conn.execute(
                select(work_item.c.system, work_item.c.source_id).order_by(work_item.c.id)
            )
        ]
    # incremental matching depends on order: the worker's is the queue's, arrival order
    resolve_changes(engine, based.project, actor="test", keys=order)
    expected = _assignment(engine)
    _restore(engine, before)

    worker = MatchWorker(engine, based.project, batch_size=7)
    report = worker.drain()

    assert _backlog(engine) == 0
    assert report.full_resolves == 0
    assert report.matched == len([k for k in expected if k[0] == HELD_OUT])
    assert report.batches > 3
    assert _assignment(engine) == expected
    with engine.connect() as conn:
        assert record_store.changed_since_matched(conn, based.project.config.entity) == []
        audit.verify(conn)


def test_the_worker_records_how_long_each_record_took_from_received_to_golden(
    based: Based,
) -> None:
    engine = based.engine
    loaded = _load_held_out(based)
    with writing(engine) as conn:
        conn.execute(delete(match_wait))  # the base's resolve recorded its records' waits
        conn.execute(update(work_item).values(enqueued_at=utcnow() - timedelta(seconds=90)))

    MatchWorker(engine, based.project, batch_size=7).drain()
    report = health_report(engine, based.project, actor=cli_actor())

    latency = {h.system: (h.matched_hour, h.golden_latency) for h in report.intake}
    matched, held_out = latency.pop(HELD_OUT)
    assert matched == loaded
    assert held_out is not None
    assert 90 <= held_out.p50 <= held_out.p95 <= held_out.p99 < 150
    assert set(latency.values()) == {(0, None)}  # nothing of theirs was queued


def test_records_matched_by_a_resolve_meanwhile_are_skipped(based: Based) -> None:
    loaded = _load_held_out(based)
    resolve_changes(based.engine, based.project, actor="test")  # leaves the queue alone
    assert _backlog(based.engine) == loaded

    report = MatchWorker(based.engine, based.project).drain()

    assert (report.skipped, report.matched) == (loaded, 0)
    assert _backlog(based.engine) == 0


def test_a_record_that_fails_is_retried_alone_and_the_others_go_on(
    based: Based, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load_held_out(based)
    with based.engine.connect() as conn:
        poison = conn.execute(
            select(work_item.c.system, work_item.c.source_id).order_by(work_item.c.id).offset(3)
        ).first()
    assert poison is not None
    real = IncrementalResolver.match

    def match(self: IncrementalResolver, conn: Any, current: Any, **options: Any) -> Any:
        if (current.system, current.source_id) == tuple(poison):
            raise ValueError("cannot match this one")
        return real(self, conn, current, **options)

    monkeypatch.setattr(IncrementalResolver, "match", match)
    worker = MatchWorker(based.engine, based.project, batch_size=10, retry_in=timedelta(0))
    report = worker.drain()

    assert report.failed == queue.MAX_ATTEMPTS  # tried until given up
    with based.engine.connect() as conn:
        stats = queue.stats(conn)
        [failure] = queue.failures(conn)
    assert (stats.waiting, stats.leased, stats.failed) == (0, 0, 1)
    assert (failure["system"], failure["source_id"]) == tuple(poison)
    assert "ValueError: cannot match this one" in failure["last_error"]
    assert tuple(poison) not in _assignment(based.engine)
    assert report.matched > 20


def test_without_a_model_the_worker_runs_a_full_resolve(
    engine: Engine,
    demo: DemoData,  # noqa: F811
) -> None:
    project = demo.project()
    for system, path in inputs(demo.data):
        load_file(engine, project, system, path, actor="test")
    queued = _backlog(engine)

    report = MatchWorker(engine, project).drain()

    assert report.full_resolves == 1
    assert report.matched == queued
    assert _backlog(engine) == 0
    with engine.connect() as conn:
        heads = conn.execute(select(func.count()).select_from(record_head)).scalar_one()
    assert len(_assignment(engine)) == heads


# ---- a worker killed in the middle of a batch


def _worker_process(
    project_dir: Path, url: str, output: Path, *args: str
) -> subprocess.Popen[bytes]:
    accord = Path(sys.executable).parent / "accord"
    env = os.environ | {"ACCORD_DATABASE_URL": url}
    with output.open("wb") as out:
        return subprocess.Popen(
            [str(accord), "worker", "run", str(project_dir), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _leased(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(work_item)
                .where(work_item.c.lease_owner.is_not(None))
            ).scalar_one()
        )


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(based: Based) -> None:
    engine = based.engine
    loaded = _load_held_out(based)
    start = _dump(engine)
    MatchWorker(engine, based.project, batch_size=10).drain()
    undisturbed = (_assignment(engine), _golden(engine))
    _restore(engine, start)

    url = engine.url.render_as_string(hide_password=False)
    output = based.folder / "worker.log"
    process = _worker_process(
        based.demo.project_dir, url, output, "--drain", "--batch-size", "10", "--lease", "1"
    )
    deadline = time.monotonic() + 120
    try:
        # wait until it has finished a batch and holds the lease of the next one
        while not (_backlog(engine) < loaded and _leased(engine)):
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the worker took no batch in two minutes"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    remaining = _backlog(engine)
    assert 0 < remaining < loaded, "killed before its first batch or after its last"
    assert _leased(engine) > 0, "killed holding a lease: the batch it was matching"

    time.sleep(1.1)  # the dead worker's lease runs out
    MatchWorker(engine, based.project, batch_size=10).drain()

    assert _backlog(engine) == 0
    assert (_assignment(engine), _golden(engine)) == undisturbed
    with engine.connect() as conn:
        audit.verify(conn)
        heads = conn.execute(select(func.count()).select_from(record_head)).scalar_one()
    assert len(_assignment(engine)) == heads


def test_a_withdrawn_load_is_queued_and_the_worker_takes_its_records_out(based: Based) -> None:
    from accord.govern.permissions import Actor, Role  # noqa: PLC0415
    from accord.intake.loads import withdraw  # noqa: PLC0415

    [(_, path)] = [(s, p) for s, p in inputs(based.demo.data) if s == HELD_OUT]
    loaded = load_file(based.engine, based.project, HELD_OUT, path, actor="test")
    MatchWorker(based.engine, based.project).drain()
    assert any(key[0] == HELD_OUT for key in _assignment(based.engine))

    withdraw(based.engine, loaded.load_id, actor=Actor("user", "ops", Role.ADMIN))
    assert _backlog(based.engine) == loaded.new
    MatchWorker(based.engine, based.project).drain()

    assert _backlog(based.engine) == 0
    assert not any(key[0] == HELD_OUT for key in _assignment(based.engine))
    with based.engine.connect() as conn:
        audit.verify(conn)
