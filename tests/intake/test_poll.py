"""The SQL polling channel (`intake.poll`) against real source databases: SQLite,
PostgreSQL (a table in a schema of its own) and MariaDB (a table with a uuid suffix,
dropped after), each stored into SQLite and PostgreSQL stores. No row is skipped or
stored twice: across page boundaries inside one watermark value, across runs stopped
half-way, and while rows change under a run."""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config.intake import PollConfig
from accord.config.loader import Project, load_project
from accord.errors import AccordError, ProjectInvalid
from accord.intake import poll
from accord.intake.load import Batcher
from accord.store import poll_cursor
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from accord.store.tables import load, quarantine, record_head, source_record
from tests.conftest import POSTGRES_URL
from tests.factories import CRM_COLUMNS, crm_row
from tests.services import require_database

MARIADB_URL = os.environ.get("ACCORD_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
ENV = "ACCORD_TEST_POLL_URL"
T0 = datetime(2024, 5, 1, 12, 0, 0)  # noqa: DTZ001  (a naive source timestamp)


class SourceDB:
    """A source system's customer table on a real database."""

    def __init__(self, url: str, kind: str, table_name: str, schema: str | None) -> None:
        self.url = url
        self.kind = kind
        self.engine = create_engine(url)
        self.table_name = table_name
        self.schema = schema
        self.table: Table | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    def create(self, watermark: str = "naive") -> Table:
        """The CRM's columns, an `updated_at` watermark (naive or aware timestamp, or a
        sequence number) and a free `note` column."""
        wm_type: Any = {
            "naive": DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
            "aware": DateTime(timezone=True).with_variant(
                mysql.DATETIME(fsp=6), "mysql", "mariadb"
            ),
            "seq": Integer(),
        }[watermark]
        columns = [Column("Id", String(64), primary_key=True)]
        columns += [Column(c, String(200)) for c in CRM_COLUMNS if c != "Id"]
        columns += [Column("updated_at", wm_type), Column("note", Text)]
        self.table = Table(self.table_name, MetaData(), *columns, schema=self.schema)
        self.table.create(self.engine)
        return self.table

    def insert(self, *rows: dict[str, Any]) -> None:
        assert self.table is not None
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), list(rows))

    def set(self, source_id: str, **values: Any) -> None:
        assert self.table is not None
        with self.engine.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.Id == source_id).values(values))

    def rows(self) -> dict[str, dict[str, Any]]:
        assert self.table is not None
        with self.engine.connect() as conn:  # untyped, as the channel reads them
            found = conn.execute(text(f"SELECT * FROM {self.qualified}")).mappings()
            return {r["Id"]: {k: poll.json_ready(v) for k, v in r.items()} for r in found}

    def drop(self) -> None:
        if self.table is not None:
            self.table.drop(self.engine, checkfirst=True)
        self.engine.dispose()


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Iterator[SourceDB]:
    db = SourceDB(f"sqlite:///{tmp_path / 'source.sqlite3'}", "sqlite", "customers", None)
    yield db
    db.drop()


def _postgres_source() -> Iterator[SourceDB]:
    require_database("PostgreSQL", POSTGRES_URL)
    schema = f"poll_src_{uuid.uuid4().hex[:10]}"
    db = SourceDB(POSTGRES_URL, "postgres", "customers", schema)
    with db.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield db
    with db.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    db.engine.dispose()


def _mariadb_source() -> Iterator[SourceDB]:
    require_database("MariaDB", MARIADB_URL)
    db = SourceDB(MARIADB_URL, "mariadb", f"poll_customers_{uuid.uuid4().hex[:10]}", None)
    yield db
    db.drop()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SourceDB]:
    """A source table on each database in turn."""
    if request.param == "sqlite":
        db = SourceDB(f"sqlite:///{tmp_path / 'source.sqlite3'}", "sqlite", "customers", None)
        yield db
        db.drop()
    elif request.param == "postgres":
        yield from _postgres_source()
    else:
        yield from _mariadb_source()


def project_polling(
    project_dir: Path, source: SourceDB, monkeypatch: pytest.MonkeyPatch, **block: Any
) -> Project:
    """The demo project with a poll block on the CRM reading `source`."""
    monkeypatch.setenv(ENV, source.url)
    settings_ = {"url_env": ENV, "watermark": "updated_at"} | block
    if "query" not in settings_:
        settings_.setdefault("table", source.qualified)
    config = project_dir / "accord.yaml"
    content = config.read_text(encoding="utf-8")
    anchor = "    default_region: GB\n"
    assert anchor in content
    content = content.replace(
        anchor, anchor + f"    intake:\n      poll: {json.dumps(settings_)}\n", 1
    )
    config.write_text(content, encoding="utf-8")
    return load_project(project_dir)


def row(source_id: str, updated_at: Any, **values: Any) -> dict[str, Any]:
    return crm_row(source_id) | {"updated_at": updated_at, "note": None} | values


def current(engine: Engine) -> dict[str, dict[str, Any]]:
    """The stored current payload of each CRM record."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(record_head.c.source_id, source_record.c.payload)
            .join(source_record, source_record.c.id == record_head.c.source_record_id)
            .where(record_head.c.system == "crm")
        )
        return {r.source_id: r.payload for r in rows}


def versions(engine: Engine) -> dict[str, int]:
    """How many versions of each CRM record are stored."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(source_record.c.source_id, func.count())
            .where(source_record.c.system == "crm")
            .group_by(source_record.c.source_id)
        )
        return {r[0]: r[1] for r in rows}


def cursor(engine: Engine) -> poll_cursor.StoredCursor | None:
    with engine.connect() as conn:
        return poll_cursor.read(conn, "crm")


def run(engine: Engine, project: Project, batch_size: int | None = None) -> Any:
    return poll.poll_once(engine, project, "crm", actor="test", batch_size=batch_size)


# --- delta sync on every source and store ---------------------------------------------------


def test_initial_load_then_only_the_changes(
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source.create()
    source.insert(*(row(f"C{i}", T0 + timedelta(seconds=i)) for i in range(5)))
    project = project_polling(demo_project_dir, source, monkeypatch)

    first = run(engine, project)
    assert (first.read, first.new, first.status) == (5, 5, "done")
    source.set("C1", FirstName="Berta", updated_at=T0 + timedelta(hours=1))
    source.set("C3", City="Hamburg", updated_at=T0 + timedelta(hours=1))
    source.insert(row("C9", T0 + timedelta(hours=2)))
    second = run(engine, project)
    assert (second.read, second.new, second.changed, second.unchanged) == (3, 1, 2, 0)
    third = run(engine, project)
    assert third.read == 0

    assert current(engine) == source.rows()
    assert versions(engine) == {"C0": 1, "C1": 2, "C2": 1, "C3": 2, "C4": 1, "C9": 1}
    with engine.connect() as conn:
        loads = conn.execute(select(load.c.channel, load.c.source_name, load.c.status)).all()
    assert loads == [("poll", f"poll:{source.qualified}", "done")] * 3


@pytest.mark.parametrize("watermark", ["naive", "aware", "seq"])
def test_rows_sharing_one_watermark_across_page_boundaries_are_each_stored_once(
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    watermark: str,
) -> None:
    source.create(watermark)
    same: Any = {"naive": T0, "aware": T0.replace(tzinfo=UTC), "seq": 7}[watermark]
    source.insert(*(row(f"C{i}", same) for i in range(7)))
    project = project_polling(demo_project_dir, source, monkeypatch, batch_size=2)

    report = run(engine, project)
    assert (report.read, report.new, report.quarantined) == (7, 7, 0)
    assert versions(engine) == {f"C{i}": 1 for i in range(7)}
    stored = cursor(engine)
    assert stored is not None and stored.last_key == "C6"
    # rows arriving later with the same watermark and a later key are not skipped
    source.insert(row("C7", same), row("C8", same))
    assert run(engine, project).new == 2
    assert run(engine, project).read == 0
    assert current(engine) == source.rows()


def test_a_run_stopped_after_its_first_page_resumes_and_ends_as_an_undisturbed_run(
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    source.create()
    source.insert(*(row(f"C{i}", T0 + timedelta(seconds=i // 3)) for i in range(8)))
    project = project_polling(demo_project_dir, source, monkeypatch, batch_size=3)
    write = Batcher.write
    calls: list[int] = []

    def dies_on_the_second_page(self: Batcher, conn: Any, batch: Any) -> None:
        calls.append(len(batch))
        if len(calls) == 2:
            write(self, conn, batch)  # stored, then the process "dies" before commit
            raise KeyboardInterrupt
        write(self, conn, batch)

    monkeypatch.setattr(Batcher, "write", dies_on_the_second_page)
    with pytest.raises(KeyboardInterrupt):
        run(engine, project)
    monkeypatch.setattr(Batcher, "write", write)
    assert versions(engine) == {"C0": 1, "C1": 1, "C2": 1}
    stored = cursor(engine)
    assert stored is not None and stored.last_key == "C2"
    with engine.connect() as conn:
        assert conn.execute(select(load.c.status)).scalars().all() == ["failed"]

    resumed = run(engine, project)
    assert (resumed.read, resumed.new) == (5, 5)

    undisturbed = make_engine(f"sqlite:///{tmp_path / 'undisturbed.sqlite3'}")
    upgrade(undisturbed)
    run(undisturbed, project)
    assert current(engine) == current(undisturbed) == source.rows()
    assert versions(engine) == versions(undisturbed)
    undisturbed.dispose()


def test_rows_changing_between_pages_end_in_their_latest_content(
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source.create("seq")
    source.insert(*(row(f"C{i}", i) for i in range(6)))
    project = project_polling(demo_project_dir, source, monkeypatch, batch_size=2)
    page = poll.Source.page
    pages: list[int] = []

    def changing(self: poll.Source, after: Any, floor: Any, limit: int) -> Any:
        rows = page(self, after, floor, limit)
        pages.append(len(rows))
        if len(pages) == 1:  # after the first page: one row read, one ahead, both change
            source.set("C0", FirstName="Read", updated_at=10)
            source.set("C4", FirstName="Ahead", updated_at=11)
        return rows

    monkeypatch.setattr(poll.Source, "page", changing)
    report = run(engine, project)
    assert (report.read, report.new, report.changed, report.quarantined) == (7, 6, 1, 0)
    assert current(engine) == source.rows()
    assert versions(engine) == {"C0": 2, "C1": 1, "C2": 1, "C3": 1, "C4": 1, "C5": 1}
    assert current(engine)["C4"]["FirstName"] == "Ahead"


def test_a_query_source_reads_through_a_subquery(
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source.create()
    source.insert(row("C1", T0), row("C2", T0), row("C3", T0, note="skip"))
    # colons and percent signs in the query are SQL, not parameters
    query = (
        f"SELECT * FROM {source.qualified} WHERE (note IS NULL OR note <> 'skip') "
        "AND 'a:b' LIKE '%:%';  "
    )
    project = project_polling(demo_project_dir, source, monkeypatch, query=query, batch_size=1)
    report = run(engine, project)
    assert (report.read, report.new, report.source_name) == (2, 2, "poll:query")
    assert sorted(current(engine)) == ["C1", "C2"]


@pytest.mark.parametrize("kind", ["table", "query"])
def test_rows_with_a_null_watermark_are_counted_and_named_not_silently_missed(  # noqa: PLR0917
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    source.create()
    source.insert(row("C1", T0), row("C2", None), row("C3", None), row("C4", T0))
    block: dict[str, Any] = {"batch_size": 1}
    if kind == "query":
        block["query"] = f"SELECT * FROM {source.qualified}"
    project = project_polling(demo_project_dir, source, monkeypatch, **block)

    report = run(engine, project)
    assert (report.read, report.new, report.unplaced) == (2, 2, 2)
    assert sorted(current(engine)) == ["C1", "C4"]
    assert "2 rows have a NULL updated_at" in caplog.text
    with engine.connect() as conn:
        counts = conn.execute(select(load.c.counts).order_by(load.c.id.desc())).scalar_one()
    assert counts["unplaced"] == 2  # kept with the load: `accord loads show`

    # given a watermark, they are read by the next run, and no longer counted
    source.set("C2", updated_at=T0 + timedelta(hours=1))
    source.set("C3", updated_at=T0 + timedelta(hours=1))
    again = run(engine, project)
    assert (again.read, again.new, again.unplaced) == (2, 2, 0)
    assert current(engine) == source.rows()


def test_a_run_stopped_early_does_not_count_what_it_did_not_reach(
    engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create()
    sqlite_source.insert(row("C1", T0), row("C2", T0), row("C3", None))
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch, batch_size=1)
    report = poll.poll_once(engine, project, "crm", actor="test", should_stop=lambda: True)
    assert (report.read, report.unplaced) == (1, 0)


# --- a source that cannot be read --------------------------------------------------------


def test_an_unset_environment_variable_is_named(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create()
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch)
    monkeypatch.delenv(ENV)
    with pytest.raises(AccordError, match=f"the environment variable {ENV} is not set") as info:
        run(sqlite_engine, project)
    assert info.value.hint is not None and f"export {ENV}=" in info.value.hint
    monkeypatch.setenv(ENV, "not a url://")
    with pytest.raises(AccordError, match=f"{ENV} does not hold a database URL"):
        run(sqlite_engine, project)
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(load)).scalar_one() == 0


@pytest.mark.parametrize(
    ("block", "message", "hint"),
    [
        ({"table": "no_such_table"}, "reading the table no_such_table of crm failed", "exists"),
        ({"watermark": "updatd_at"}, "reading the table", "its columns: Id,"),
        ({"key": "nokey"}, "reading the table", "`key: nokey`"),
    ],
)
def test_a_misnamed_table_or_column_is_refused_clearly(  # noqa: PLR0917
    sqlite_engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    block: dict[str, str],
    message: str,
    hint: str,
) -> None:
    source.create()
    source.insert(row("C1", T0))
    project = project_polling(demo_project_dir, source, monkeypatch, **block)
    with pytest.raises(AccordError, match=message) as info:
        run(sqlite_engine, project)
    assert hint in (info.value.hint or "")


def test_a_query_without_the_watermark_column_is_refused_clearly(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create()
    sqlite_source.insert(row("C1", T0))
    project = project_polling(
        demo_project_dir, sqlite_source, monkeypatch, query='SELECT "Id" FROM customers'
    )
    with pytest.raises(AccordError, match="query of crm failed"):
        run(sqlite_engine, project)


@pytest.mark.parametrize(
    "block",
    [
        {"table": "customers; DROP TABLE customers"},
        {"table": "customers", "query": "SELECT 1"},
        {"watermark": "updated_at OR 1=1"},
        {"url_env": "postgresql://u:secret@host/db"},
        {"every": "soon"},
        {"lag": "-5s"},
        {"batch_size": 0},
    ],
)
def test_a_hostile_or_malformed_poll_block_is_a_project_problem(
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    block: dict[str, Any],
) -> None:
    with pytest.raises(ProjectInvalid) as info:
        project_polling(demo_project_dir, sqlite_source, monkeypatch, **block)
    assert any("accord.yaml" in p.where for p in info.value.problems)


def test_a_source_that_is_down_leaves_the_cursor_where_it_was(
    engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create()
    sqlite_source.insert(row("C1", T0), row("C2", T0))
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch)
    run(engine, project)
    before = cursor(engine)
    monkeypatch.setenv(ENV, "postgresql+psycopg://accord:s3cret@127.0.0.1:1/nothing")
    with pytest.raises(AccordError, match="cannot reach crm's database") as info:
        run(engine, project)
    assert "s3cret" not in str(info.value) and "***" in info.value.message
    after = cursor(engine)
    assert before is not None and after is not None
    assert (after.watermark, after.last_key) == (before.watermark, before.last_key)
    assert after.last_run_at is not None and after.last_run_at >= (before.last_run_at or T0)


def test_a_source_lost_mid_run_keeps_the_pages_stored_and_resumes(
    engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create("seq")
    sqlite_source.insert(*(row(f"C{i}", i) for i in range(5)))
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch, batch_size=2)
    page = poll.Source.page

    def lost(self: poll.Source, after: Any, floor: Any, limit: int) -> Any:
        if after is not None:
            raise AccordError("cannot reach crm's database (simulated)")
        return page(self, after, floor, limit)

    monkeypatch.setattr(poll.Source, "page", lost)
    with pytest.raises(AccordError, match="simulated"):
        run(engine, project)
    monkeypatch.setattr(poll.Source, "page", page)
    assert versions(engine) == {"C0": 1, "C1": 1}
    with engine.connect() as conn:
        assert conn.execute(select(load.c.status)).scalars().all() == ["failed"]
    assert run(engine, project).new == 3
    assert current(engine) == sqlite_source.rows()


# --- late commits and the lag window -----------------------------------------------------------


def test_lag_rereads_late_commits_and_counts_the_rest_unchanged(
    engine: Engine,
    source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source.create()
    source.insert(*(row(f"C{i}", T0 + timedelta(seconds=10 * i)) for i in range(4)))
    project = project_polling(demo_project_dir, source, monkeypatch, lag="15s")
    assert run(engine, project).new == 4
    # committed now, stamped when its transaction began: 5 s behind the cursor
    source.insert(row("L1", T0 + timedelta(seconds=25)))
    again = run(engine, project)
    assert (again.new, again.unchanged) == (1, 2)  # L1; C2 and C3 read again
    assert current(engine) == source.rows()
    stored = cursor(engine)
    assert stored is not None and stored.last_key == "C3"  # the cursor never goes back


def test_without_lag_a_late_commit_below_the_cursor_waits_for_its_next_change(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create("seq")
    sqlite_source.insert(row("C1", 10), row("C2", 20))
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch)
    run(sqlite_engine, project)
    sqlite_source.insert(row("L1", 15))
    assert run(sqlite_engine, project).read == 0  # the documented trap
    sqlite_source.set("L1", updated_at=30)
    assert run(sqlite_engine, project).new == 1


def test_a_numeric_watermark_lag_counts_sequence_values(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create("seq")
    sqlite_source.insert(row("C1", 100), row("C2", 200))
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch, lag=50)
    run(sqlite_engine, project)
    sqlite_source.insert(row("L1", 160), row("L2", 140))
    report = run(sqlite_engine, project)
    assert (report.new, report.unchanged) == (1, 1)  # L1 in the window, L2 below it


def test_a_watermark_of_another_type_than_the_cursor_is_refused(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create("seq")
    sqlite_source.insert(row("C1", 1))
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch)
    run(sqlite_engine, project)
    sqlite_source.set("C1", updated_at="2024-05-01 12:00:00")  # SQLite keeps any type
    with pytest.raises(AccordError, match="watermark of type int and a key of type text") as e:
        run(sqlite_engine, project)
    assert "--reset" in (e.value.hint or "")
    stored = cursor(sqlite_engine)
    assert stored is not None and (stored.watermark, stored.watermark_type) == ("1", "int")
    poll.reset(sqlite_engine, "crm", actor="test")
    assert run(sqlite_engine, project).changed == 1


# --- bad rows ------------------------------------------------------------------------------------


def test_bad_rows_are_quarantined_with_their_place_and_the_rest_load(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create("seq")
    sqlite_source.insert(
        row("C1", 1),
        row("C2", 2, FirstName="An\x00na"),
        row("C3", 3, note="x" * 1_100_000),
        row("C4", 4, RecordType="Alien"),
        row("C5", 5, FirstName="\U0001f600 Zoë"),
    )
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch, batch_size=2)
    report = run(sqlite_engine, project)
    assert (report.read, report.new, report.quarantined) == (5, 2, 3)
    assert report.quarantine_reasons == {
        "encoding.invalid": 1,
        "field.too_large": 1,
        "vocabulary.unknown": 1,
    }
    with sqlite_engine.connect() as conn:
        places = conn.execute(select(quarantine.c.location).order_by(quarantine.c.id)).scalars()
        assert list(places) == [
            "poll:customers@wm=2,key=C2",
            "poll:customers@wm=3,key=C3",
            "poll:customers@wm=4,key=C4",
        ]
        raws = conn.execute(select(quarantine.c.raw)).scalars().all()
    assert all("\x00" not in r and len(r) < 70_000 for r in raws)
    assert run(sqlite_engine, project).read == 0


def test_a_key_repeated_within_a_page_keeps_the_first_and_quarantines_the_other(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sqlite_source.create("seq")
    sqlite_source.insert(row("C1", 1), row("C2", 2))
    query = (
        "SELECT * FROM customers UNION ALL "
        'SELECT "Id", "RecordType", \'Other\', "LastName", "AccountName", "AccountId", '
        '"Email", "Phone", "Street", "PostalCode", "City", "Country", "Status", "BirthDate", '
        '"VatNumber", "LastModified", "ParentId", updated_at, note FROM customers '
        "WHERE \"Id\" = 'C1'"
    )
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch, query=query, key="Id")
    report = run(sqlite_engine, project)
    assert (report.read, report.new, report.quarantine_reasons) == (
        3,
        2,
        {"source_id.repeated": 1},
    )


def test_database_values_become_json_the_same_way_every_time() -> None:
    values = {
        "n": Decimal("10.50"),
        "b": b"\xff\x00",
        "t": "text",
        "u": uuid.UUID(int=1),
        "f": float("nan"),
        "d": datetime(2024, 1, 1, tzinfo=UTC),
        "i": timedelta(seconds=90),
    }
    ready = {k: poll.json_ready(v) for k, v in values.items()}
    assert ready == {
        "n": "10.50",
        "b": "base64:/wA=",
        "t": "text",
        "u": "00000000-0000-0000-0000-000000000001",
        "f": "nan",
        "d": "2024-01-01T00:00:00+00:00",
        "i": 90.0,
    }
    assert json.loads(json.dumps(ready)) == ready


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("a\x00b", "encoding.invalid"),
        ({"note": {"deep": "a\x00b"}}, "encoding.invalid"),  # inside a JSON column
        (["\ud800"], "encoding.invalid"),
        ({"a": functools.reduce(lambda inner, _: [inner], range(40), 1)}, "record.json"),
    ],
)
def test_a_row_no_store_can_hold_is_refused_wherever_the_bad_text_sits(
    value: Any, code: str
) -> None:
    record = poll.raw_record({"Id": 1, "doc": value}, "poll:t@wm=1,key=1", 10_000)
    assert record.fields is None
    assert [r.code for r in record.reasons] == [code]


cursor_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.text(),
    st.uuids(),
)


@given(cursor_values)
def test_a_cursor_value_reads_back_exactly(value: Any) -> None:
    written, kind = poll.encode(value)
    assert poll.decode(written, kind) == value
    assert type(poll.decode(written, kind)) is type(value)


def test_config_parses_durations() -> None:
    config = PollConfig.model_validate(
        {"url_env": "X", "table": "s.t", "watermark": "w", "every": "2h", "lag": "30s"}
    )
    assert (config.every, config.lag, config.batch_size) == (
        timedelta(hours=2),
        timedelta(seconds=30),
        1000,
    )
    with pytest.raises(ValidationError, match="exactly one of"):
        PollConfig.model_validate({"url_env": "X", "watermark": "w"})
    with pytest.raises(ValidationError, match="longer than 0s"):
        PollConfig.model_validate({"url_env": "X", "table": "t", "watermark": "w", "every": 0})


# --- the command line ---------------------------------------------------------------------------


def test_cli_polls_resets_and_names_what_to_do_next(
    sqlite_source: SourceDB, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    sqlite_source.create()
    sqlite_source.insert(row("C1", T0), row("C2", T0))
    project_polling(demo_project_dir, sqlite_source, monkeypatch)
    runner = CliRunner()

    result = runner.invoke(app, ["poll", str(demo_project_dir)])
    assert result.exit_code == 0, result.output
    assert "Polled" in result.output and "crm" in result.output
    result = runner.invoke(app, ["poll", str(demo_project_dir), "-s", "crm", "--reset"])
    assert result.exit_code == 0, result.output
    assert "reset" in result.output
    sqlite_source.insert(row("C3", None))
    result = runner.invoke(app, ["poll", str(demo_project_dir)])
    assert result.exit_code == 0, result.output
    assert "1 row has a NULL watermark or key" in result.output
    assert "docs/intake-poll.md" in result.output  # what to do about it
    result = runner.invoke(app, ["poll", str(demo_project_dir), "--system", "billing"])
    assert result.exit_code == 1
    assert "billing has no poll block" in result.output
    monkeypatch.delenv(ENV)
    result = runner.invoke(app, ["poll", str(demo_project_dir)])
    assert result.exit_code == 1
    assert f"{ENV} is not set" in result.output and "hint:" in result.output


# --- any sequence of changes ends with the store equal to the source ---------------------------

notes = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=5)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 11), st.integers(0, 2), notes),
        st.tuples(st.just("poll"), st.integers(1, 5)),
    ),
    max_size=25,
)


@settings(
    max_examples=40,
    deadline=None,
    # the fixture's store and source are emptied at the start of each example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(operations, st.booleans())
def test_any_interleaving_of_writes_and_polls_ends_with_the_store_equal_to_the_source(
    polling: tuple[Engine, SourceDB, Project, Project], steps: list[Any], late: bool
) -> None:
    """Writes stamp rows with a clock that moves forward by 0 to 2 (so many rows share a
    value); with `late`, a write may be stamped up to 2 behind the last poll's highest
    watermark, which the lag window of 2 must catch."""
    store, source, project, lagging = polling
    use = lagging if late else project
    _clear(store, source)
    clock = 0  # the latest stamp written
    lowest = 0  # the lowest stamp a write may take and still be seen
    for step in steps:
        if step[0] == "write":
            _, number, tick, note = step
            stamp = max(lowest, clock + tick - (2 if late else 0))
            clock = max(clock, stamp)
            _upsert(source, f"C{number:02d}", stamp, note)
        else:
            poll.poll_once(store, use, "crm", actor="test", batch_size=step[1])
            lowest = clock - 2 if late else clock + 1
    poll.poll_once(store, use, "crm", actor="test", batch_size=3)
    assert current(store) == source.rows()


def _upsert(source: SourceDB, source_id: str, stamp: int, note: str) -> None:
    assert source.table is not None
    with source.engine.begin() as conn:
        exists = conn.execute(
            select(source.table.c.Id).where(source.table.c.Id == source_id)
        ).first()
        if exists:
            conn.execute(
                update(source.table)
                .where(source.table.c.Id == source_id)
                .values(updated_at=stamp, note=note)
            )
        else:
            conn.execute(source.table.insert(), [row(source_id, stamp, note=note)])


def _clear(store: Engine, source: SourceDB) -> None:
    assert source.table is not None
    with source.engine.begin() as conn:
        conn.execute(delete(source.table))
    with store.begin() as conn:
        for name in ("record_head", "canonical_record", "quarantine", "source_record"):
            conn.execute(text(f"DELETE FROM {name}"))
        conn.execute(text("DELETE FROM poll_cursor"))


@pytest.fixture
def polling(
    sqlite_engine: Engine,
    sqlite_source: SourceDB,
    demo_project_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Engine, SourceDB, Project, Project]:
    sqlite_source.create("seq")
    project = project_polling(demo_project_dir, sqlite_source, monkeypatch)
    lagging_dir = tmp_path / "lagging"
    shutil.copytree(demo_project_dir, lagging_dir)
    config = lagging_dir / "accord.yaml"
    content = config.read_text(encoding="utf-8")
    config.write_text(content.replace('"watermark": ', '"lag": 2, "watermark": '), encoding="utf-8")
    return sqlite_engine, sqlite_source, project, load_project(lagging_dir)
