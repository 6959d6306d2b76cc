"""The hybrid logical clock in the store (`store/clock.py`), the same on SQLite and
PostgreSQL (the `engine` fixture runs every test here once per backend): its stamps
survive a restart, concurrent writers never share or interleave them, and intake stamps
every source record with one read and one write of the clock per batch."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select

from accord.config import load_project
from accord.hlc import Stamp, wall_ms
from accord.intake.load import load_file
from accord.store import clock
from accord.store.engine import make_engine, writing
from accord.store.tables import counter, source_record
from tests.factories import crm_row, write_csv


def _stamps(engine: Engine, count: int) -> list[Stamp]:
    with writing(engine) as conn:
        return [Stamp.parse(text) for text in clock.stamp(conn, [None] * count)]


def test_stamps_grow_and_survive_a_restart(engine: Engine) -> None:
    first = _stamps(engine, 3)
    assert first == sorted(first) and len(set(first)) == 3
    assert abs(first[0].physical - wall_ms()) < 60_000
    url = engine.url.render_as_string(hide_password=False)
    again = make_engine(url)  # another process, or this one after a restart
    try:
        with again.connect() as conn:
            assert clock.last_stamp(conn) == first[-1]
        assert _stamps(again, 1)[0] > first[-1]
    finally:
        again.dispose()


def test_a_clock_row_missing_is_made_again(engine: Engine) -> None:
    with writing(engine) as conn:
        conn.execute(counter.delete().where(counter.c.name == clock.COUNTER))
    assert len(_stamps(engine, 2)) == 2


def test_concurrent_writers_get_distinct_stamps_in_whole_batches(engine: Engine) -> None:
    batches: list[list[Stamp]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def write() -> None:
        try:
            for _ in range(10):
                stamps = _stamps(engine, 25)
                with lock:
                    batches.append(stamps)
        except BaseException as error:  # noqa: BLE001  (reported by the test)
            failures.append(error)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    every = [s for batch in batches for s in batch]
    assert len(set(every)) == len(every) == 4 * 10 * 25
    # each batch took its stamps in one turn: no other batch's stamp falls inside its range
    ranges = sorted((batch[0], batch[-1]) for batch in batches)
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end < start
    for batch in batches:
        assert batch == sorted(batch)


def test_intake_stamps_each_record_with_one_clock_update_per_batch(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    rows = [
        crm_row(f"C{i}", Email=f"p{i}@x.org", LastModified="2024-01-01T10:00:00Z")
        for i in range(30)
    ]
    rows.append(crm_row("FUTURE", Email="f@x.org", LastModified="2999-01-01T00:00:00Z"))
    statements: list[str] = []

    def note(*args: Any) -> None:
        text, parameters = str(args[2]).lstrip().upper(), args[3]
        if text.startswith("UPDATE COUNTER") and clock.COUNTER in repr(parameters):
            statements.append(text)

    event.listen(engine, "before_cursor_execute", note)
    try:
        before = wall_ms()
        load_file(
            engine, project, "crm", write_csv(tmp_path / "crm.csv", rows), actor="t", batch_size=10
        )
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(statements) == 4  # 31 records in batches of 10
    with engine.connect() as conn:
        stored = conn.execute(
            select(source_record.c.source_id, source_record.c.hlc).order_by(source_record.c.id)
        ).all()
    stamps = [Stamp.parse(hlc) for _, hlc in stored]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    future = dict(stored)["FUTURE"]
    skew = project.config.survivorship.max_clock_skew
    assert skew == timedelta(minutes=5)
    # clamped: at most the skew ahead of the wall clock, not the year 2999
    assert Stamp.parse(future).physical <= wall_ms() + skew.total_seconds() * 1000
    assert Stamp.parse(future).physical >= before + skew.total_seconds() * 1000
