"""The file-drop channel: every file taken once, moved to done/ or failed/ with a report
that says what happened and what to do next; nothing good lost or stored twice."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import load_project
from accord.config.intake import DropConfig
from accord.config.loader import Project
from accord.config.models import FileFormat
from accord.errors import NotAllowed, NotFound, ProjectInvalid
from accord.govern.permissions import Actor, Role, cli_actor
from accord.intake import drop
from accord.intake.drop import DropResult, patterns, scan_once, wanted
from accord.intake.readers import SourceFile
from accord.store.engine import make_engine
from accord.store.migrate import upgrade
from accord.store.tables import load, record_head, source_record
from tests.factories import CRM_COLUMNS, billing_row, crm_row, write_csv, write_jsonl

DROP_BLOCKS = {
    "    default_region: GB\n": "crm",  # the end of the crm system's block
    "    authority: [email]\n": "billing",
}


def _with_drops(root: Path, settle: str = "0s") -> Project:
    config = root / "accord.yaml"
    # the demo's own intake blocks give way to these
    text = re.sub(r"    intake:\n(?:      .*\n)+", "", config.read_text(encoding="utf-8"))
    for anchor, system in DROP_BLOCKS.items():
        block = f"    intake:\n      drop: {{folder: drops/{system}, settle: {settle}}}\n"
        text = text.replace(anchor, anchor + block, 1)
        (root / "drops" / system).mkdir(parents=True, exist_ok=True)
    config.write_text(text, encoding="utf-8")
    return load_project(root)


@pytest.fixture
def project(demo_project_dir: Path) -> Project:
    return _with_drops(demo_project_dir)


def _folder(project: Project, system: str = "crm") -> Path:
    return project.root / "drops" / system


def _scan(engine: Engine, project: Project, system: str = "crm", **kw: Any) -> list[DropResult]:
    return scan_once(engine, project, system, actor="test", **kw)


def _report(result: DropResult) -> dict[str, Any]:
    return json.loads(result.report_path.read_text(encoding="utf-8"))


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() or p.is_symlink())


def _stored(engine: Engine) -> set[tuple[str, str, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                source_record.c.system,
                source_record.c.source_id,
                source_record.c.version,
                source_record.c.content_hash,
            )
        )
        return {tuple(r) for r in rows}  # type: ignore[misc]


def _crm_rows(count: int, prefix: str = "C") -> list[dict[str, str]]:
    return [crm_row(f"{prefix}{i}", Email=f"p{i}@example.org") for i in range(count)]


# -- configuration and names ------------------------------------------------------------


def test_default_patterns_follow_the_mapping_format() -> None:
    config = DropConfig(folder="drops/x")
    assert patterns(config, FileFormat(type="csv")) == ("*.csv", "*.csv.gz", "*.tsv", "*.tsv.gz")
    assert "*.jsonl.gz" in patterns(config, FileFormat(type="jsonl"))
    assert "*.csv" in patterns(config, FileFormat()) and "*.ndjson" in patterns(
        config, FileFormat()
    )
    assert patterns(DropConfig(folder="x", pattern="EXPORT_*.CSV"), FileFormat()) == (
        "export_*.csv",
    )
    assert (DropConfig(folder="x").every, DropConfig(folder="x").settle) == (
        timedelta(seconds=60),
        timedelta(seconds=2),
    )
    assert DropConfig(folder="x", settle="500ms").settle == timedelta(milliseconds=500)


@pytest.mark.parametrize(
    "block",
    [
        {"folder": ""},
        {"folder": "x", "every": "soon"},
        {"folder": "x", "every": "0s"},
        {"folder": "x", "settle": "-1s"},
        {"folder": "x", "pattern": "../*.csv"},
        {"folder": "x", "patern": "*.csv"},
    ],
)
def test_a_bad_drop_block_is_refused(block: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DropConfig.model_validate(block)


def test_a_bad_drop_block_in_accord_yaml_is_reported_with_its_line(demo_project_dir: Path) -> None:
    config = demo_project_dir / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "    default_region: GB\n",
            "    default_region: GB\n    intake:\n      drop: {folder: drops/crm, every: often}\n",
            1,
        ),
        encoding="utf-8",
    )
    with pytest.raises(ProjectInvalid) as caught:
        load_project(demo_project_dir)
    assert any("accord.yaml:" in p.where and "often" in p.message for p in caught.value.problems)


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("crm.csv", True),
        ("CRM.CSV", True),
        ("crm.csv.gz", True),
        ("crm.csv.part", False),
        ("crm.csv.tmp", False),
        (".crm.csv", False),
        ("..crm.csv", False),
        ("crm.jsonl", False),
        ("crm.csv.bak", False),
    ],
)
def test_which_names_are_taken(name: str, taken: bool) -> None:
    assert wanted(name, patterns(DropConfig(folder="x"), FileFormat(type="csv"))) is taken


# -- end to end ------------------------------------------------------------------------


def test_csv_jsonl_and_their_gzip_end_to_end(engine: Engine, project: Project) -> None:
    crm, billing = _folder(project, "crm"), _folder(project, "billing")
    write_csv(crm / "a.csv", _crm_rows(3, "A"))
    plain = write_csv(crm / "b.tmpcsv", _crm_rows(2, "B"))
    (crm / "b.csv.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    write_jsonl(billing / "c.jsonl", [billing_row(f"J{i}", email=f"j{i}@x.org") for i in range(2)])
    write_jsonl(billing / "d.jsonl.gz", [billing_row("G1", email="g@x.org")], gzipped=True)

    results = _scan(engine, project, "crm") + _scan(engine, project, "billing")

    assert [(r.name, r.status, r.load and r.load.new) for r in results] == [
        ("a.csv", "done", 3),
        ("b.csv.gz", "done", 2),
        ("c.jsonl", "done", 2),
        ("d.jsonl.gz", "done", 1),
    ]
    assert _files(crm) == [] and _files(billing) == []
    assert _files(crm / "done") == [
        "a.csv",
        "a.csv.report.json",
        "b.csv.gz",
        "b.csv.gz.report.json",
    ]
    assert list((crm / "processing").iterdir()) == []
    report = _report(results[1])
    assert report["status"] == "done" and report["load_id"] == results[1].load.load_id  # type: ignore[union-attr]
    assert report["counts"]["new"] == 2 and report["error"] is None and report["next"] is None
    assert _count(engine, load, load.c.channel == "drop") == 4
    assert _count(engine, record_head) == 8
    assert _scan(engine, project, "crm") == []  # nothing waiting: nothing done


def test_oldest_file_first(engine: Engine, project: Project) -> None:
    folder = _folder(project)
    for index, name in enumerate(["z.csv", "m.csv", "a.csv"]):
        write_csv(folder / name, [crm_row("C1", City=f"City{index}")])
        os.utime(folder / name, (1_000_000 + index, 1_000_000 + index))
    results = _scan(engine, project)
    assert [r.name for r in results] == ["z.csv", "m.csv", "a.csv"]
    assert [(r.load.new, r.load.changed) for r in results if r.load] == [(1, 0), (0, 1), (0, 1)]


def test_a_truncated_gzip_fails_and_keeps_the_rows_before(engine: Engine, project: Project) -> None:
    folder = _folder(project)
    plain = write_csv(folder / "x.txt", _crm_rows(3000))
    data = gzip.compress(plain.read_bytes())
    plain.unlink()
    (folder / "big.csv.gz").write_bytes(data[: len(data) * 2 // 3])

    [result] = _scan(engine, project, batch_size=500)

    assert result.status == "failed" and result.path == folder / "failed" / "big.csv.gz"
    report = _report(result)
    assert "gzip stream is damaged" in report["error"]
    assert report["load_id"] is not None and report["counts"]["new"] > 0
    assert "re-export" in report["next"] and "loads only what changed" in report["next"]
    with engine.connect() as conn:
        status = conn.execute(select(load.c.status)).scalar_one()
    assert status == "failed"
    assert _count(engine, record_head) == report["counts"]["new"]


def test_damaged_deflate_data_fails_the_file_and_does_not_crash(
    engine: Engine, project: Project
) -> None:
    folder = _folder(project)
    plain = write_csv(folder / "x.txt", _crm_rows(200))
    data = bytearray(gzip.compress(plain.read_bytes()))
    plain.unlink()
    for i in range(40, 80):
        data[i] ^= 0x5A
    (folder / "bad.csv.gz").write_bytes(bytes(data))
    [result] = _scan(engine, project)
    assert result.status == "failed"
    assert "gzip" in _report(result)["error"]


def test_invalid_utf8_quarantines_its_row_and_the_file_is_done(
    engine: Engine, project: Project
) -> None:
    folder = _folder(project)
    path = write_csv(folder / "crm.csv", _crm_rows(3))
    path.write_bytes(path.read_bytes().replace(b"C1,Contact,Anna", b"C1,Contact,An\xffna"))

    [result] = _scan(engine, project)

    assert result.status == "done"
    report = _report(result)
    assert report["quarantined"] == 1 and report["quarantine_reasons"] == {"encoding.invalid": 1}
    assert f"accord drop quarantined {project.root} {report['load_id']}" in report["next"]
    assert _count(engine, record_head) == 2


def test_a_header_only_csv_is_done_with_a_note(engine: Engine, project: Project) -> None:
    (_folder(project) / "crm.csv").write_text(",".join(CRM_COLUMNS) + "\n", encoding="utf-8")
    [result] = _scan(engine, project)
    assert result.status == "done" and result.load is not None and result.load.read == 0
    assert "no records" in _report(result)["next"]


def test_an_empty_file_fails_before_any_load(engine: Engine, project: Project) -> None:
    (_folder(project) / "crm.csv").write_bytes(b"")
    [result] = _scan(engine, project)
    report = _report(result)
    assert (result.status, report["load_id"], report["counts"]) == ("failed", None, None)
    assert "empty (0 bytes)" in report["error"] and "check the export" in report["next"]
    assert _count(engine, load) == 0


def test_a_bad_header_fails_with_what_to_do(engine: Engine, project: Project) -> None:
    row = crm_row("C1")
    del row["Email"]
    write_csv(_folder(project) / "crm.csv", [row])
    [result] = _scan(engine, project)
    assert result.status == "failed"
    assert result.path.parent.name == "failed" and result.report_path.is_file()
    report = _report(result)
    assert "lacks columns the mapping reads: Email" in report["error"]
    assert "fix the export" in report["next"]
    assert _count(engine, record_head) == 0


def test_files_still_being_written_are_left_alone(engine: Engine, demo_project_dir: Path) -> None:
    project = _with_drops(demo_project_dir, settle="60s")
    folder = _folder(project)
    for name in ["crm.csv.part", "crm.csv.tmp", ".crm.csv", "fresh.csv"]:
        write_csv(folder / name, [crm_row("C1")])
    settled = write_csv(folder / "settled.csv", [crm_row("C2")])
    os.utime(settled, (time.time() - 120, time.time() - 120))

    results = _scan(engine, project)

    assert [r.name for r in results] == ["settled.csv"]
    assert _files(folder) == [".crm.csv", "crm.csv.part", "crm.csv.tmp", "fresh.csv"]
    # the writer renames when done: the next scan (once settled) takes it
    os.rename(folder / "crm.csv.part", folder / "late.csv")
    os.utime(folder / "late.csv", (time.time() - 120, time.time() - 120))
    assert [r.name for r in _scan(engine, project)] == ["late.csv"]


def test_a_claim_folder_tidied_away_under_a_worker_does_not_lose_the_file(
    engine: Engine, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race CI found: worker A makes processing/<claim>/, worker B's scan sees it empty
    # and tidies it away, A's rename then fails while B skips the file A holds locked.
    folder = _folder(project)
    write_csv(folder / "crm.csv", _crm_rows(3, "T-"))
    real_rename = os.rename
    tidied: list[str] = []

    def rename_after_tidy(source: Any, target: Any) -> None:
        claim = Path(target).parent
        if not tidied and claim.parent.name == "processing":
            claim.rmdir()  # what the other worker's _candidates does to an empty claim
            tidied.append(claim.name)
        real_rename(source, target)

    monkeypatch.setattr(drop.os, "rename", rename_after_tidy)
    results = _scan(engine, project)

    assert tidied, "the fault was not injected"
    assert [(r.name, r.status) for r in results] == [("crm.csv", "done")]
    assert _count(engine, source_record) == 3


def test_two_scans_racing_load_each_file_exactly_once(engine: Engine, project: Project) -> None:
    folder = _folder(project)
    names = [f"part{i}.csv" for i in range(8)]
    for i, name in enumerate(names):
        write_csv(folder / name, _crm_rows(30, f"R{i}-"))
    results: list[DropResult] = []
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def worker() -> None:
        try:
            start.wait()
            results.extend(_scan(engine, project, batch_size=7))
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(r.name for r in results) == names
    assert all(r.status == "done" and r.load and r.load.new == 30 for r in results)
    with engine.connect() as conn:
        loaded = sorted(conn.execute(select(load.c.source_name)).scalars())
    assert loaded == names
    assert _count(engine, source_record) == 240
    assert sorted(_files(folder / "done")) == sorted(names + [n + ".report.json" for n in names])


def test_an_interrupted_load_is_finished_by_the_next_scan(
    engine: Engine, project: Project, tmp_path: Path
) -> None:
    rows = _crm_rows(50)
    folder = _folder(project)
    write_csv(folder / "crm.csv", rows)

    class Killed(Exception):
        pass

    def dies_midway(name: str, done: int, total: int) -> None:
        if 0 < done < total:
            raise Killed  # the process stops after the first batch

    with pytest.raises(Killed):
        _scan(engine, project, batch_size=10, progress=dies_midway)
    [left] = list((folder / "processing").glob("*/crm.csv"))  # waiting, not failed
    assert _files(folder / "done") == [] and _files(folder / "failed") == []
    assert _count(engine, record_head) == 10

    [result] = _scan(engine, project, batch_size=10)

    assert result.status == "done" and result.resumed
    assert result.load is not None and (result.load.new, result.load.unchanged) == (40, 10)
    assert not left.exists() and list((folder / "processing").iterdir()) == []
    assert _report(result)["resumed"] is True
    reference = make_engine(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    upgrade(reference)
    write_csv(folder / "again.csv", rows)  # the same rows, undisturbed, in a store of its own
    _scan(reference, project)
    assert {r[1:] for r in _stored(engine)} == {r[1:] for r in _stored(reference)}
    reference.dispose()


def test_a_store_error_leaves_the_file_for_the_next_scan(
    engine: Engine, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(_folder(project) / "crm.csv", _crm_rows(5))

    def store_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(drop, "load_file", store_down)
    with pytest.raises(ConnectionError):
        _scan(engine, project)
    monkeypatch.undo()
    [result] = _scan(engine, project)
    assert result.status == "done" and result.resumed and result.load and result.load.new == 5


def test_the_same_name_twice_never_overwrites(engine: Engine, project: Project) -> None:
    folder = _folder(project)
    write_csv(folder / "crm.csv", _crm_rows(2))
    [first] = _scan(engine, project)
    write_csv(folder / "crm.csv", _crm_rows(2))
    [second] = _scan(engine, project)
    write_csv(folder / "crm.csv", _crm_rows(3))
    [third] = _scan(engine, project)

    names = {first.path.name, second.path.name, third.path.name}
    assert first.path.name == "crm.csv" and len(names) == 3
    assert all(n.startswith("crm-") and n.endswith(".csv") for n in names - {"crm.csv"})
    assert all(r.path.is_file() and r.report_path.is_file() for r in (first, second, third))
    assert second.same_content_as == "done/crm.csv"
    assert "the same bytes as done/crm.csv" in _report(second)["next"]
    assert second.load is not None and (second.load.new, second.load.unchanged) == (0, 2)
    assert third.same_content_as is None and third.load and third.load.new == 1


def test_hostile_file_names(engine: Engine, project: Project, tmp_path: Path) -> None:
    folder = _folder(project)
    write_csv(folder / "my export ü 😀 ..v2.csv", [crm_row("C1")])
    write_csv(folder / "..hidden.csv", [crm_row("C2")])
    write_csv(folder / ("x" * 240 + ".csv"), [crm_row("C3")])
    (folder / "[bold]markup[red].csv").write_bytes((folder / "..hidden.csv").read_bytes())
    secret = tmp_path / "secret.csv"
    write_csv(secret, [crm_row("S1")])
    (folder / "link.csv").symlink_to(secret)
    os.mkfifo(folder / "pipe.csv")
    raw_name = os.fsencode(folder) + b"/bad\xffname.csv"
    with open(raw_name, "wb") as out:
        out.write((folder / "..hidden.csv").read_bytes())

    results = {r.name: r for r in _scan(engine, project)}

    assert results["my export ü 😀 ..v2.csv"].status == "done"
    assert results["[bold]markup[red].csv"].status == "done"
    assert results["x" * 240 + ".csv"].status == "done"
    assert "..hidden.csv" not in results and (folder / "..hidden.csv").exists()
    for name in ("link.csv", "pipe.csv"):
        assert results[name].status == "failed"
        assert "not a regular file" in _report(results[name])["error"]
    assert secret.is_file() and (folder / "failed" / "link.csv").is_symlink()
    bad = os.fsdecode(b"bad\xffname.csv")
    assert results[bad].status == "failed"
    assert "not valid UTF-8" in _report(results[bad])["error"]
    assert _report(results[bad])["file"] == "bad\ufffdname.csv"
    with engine.connect() as conn:
        ids = set(conn.execute(select(record_head.c.source_id)).scalars())
    assert ids == {"C1", "C2", "C3"}  # C2 by way of the markup-named copy; never S1


def test_a_huge_field_quarantines_its_row_only(engine: Engine, project: Project) -> None:
    write_csv(_folder(project) / "crm.csv", [crm_row("C1"), crm_row("C2", Street="x" * 3_000_000)])
    [result] = _scan(engine, project)
    assert result.status == "done" and result.load is not None
    assert (result.load.new, result.load.quarantined) == (1, 1)
    assert _report(result)["quarantine_reasons"] == {"field.too_large": 1}


def test_a_missing_folder_says_what_to_do(engine: Engine, project: Project) -> None:
    _folder(project).rmdir()
    with pytest.raises(NotFound, match="does not exist") as caught:
        _scan(engine, project)
    assert caught.value.hint is not None and "intake.drop.folder" in caught.value.hint
    with pytest.raises(NotFound, match="no drop folder"):
        _scan(engine, project, "erp")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.lists(st.text(max_size=12), min_size=1, max_size=20), min_size=1, max_size=6
        ).map(lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")),
    ),
    gz=st.booleans(),
    with_header=st.booleans(),
)
def test_any_bytes_end_in_done_or_failed_with_a_report(
    sqlite_engine: Engine, project: Project, content: bytes, gz: bool, with_header: bool
) -> None:
    folder = _folder(project)
    header = (",".join(CRM_COLUMNS) + "\n").encode()
    body = header + content if with_header else content
    name = "in.csv.gz" if gz else "in.csv"
    (folder / name).write_bytes(gzip.compress(body) if gz else body)
    [result] = _scan(sqlite_engine, project)
    assert result.status in ("done", "failed")
    assert result.path.is_file() and result.report_path.is_file()
    report = _report(result)
    assert (report["error"] is None) == (result.status == "done")
    assert list((folder / "processing").iterdir()) == [] and _files(folder) == []


# -- streaming -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "padding"),
    [
        (20_000, 500),  # 10 MB of CSV, quick
        pytest.param(200_000, 40, marks=pytest.mark.slow),  # many small rows: 40 s traced
    ],
)
def test_a_large_gzip_is_streamed(tmp_path: Path, rows: int, padding: int) -> None:
    path = tmp_path / "big.csv.gz"
    unpacked = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write("Id,Name,Email\n")
        for i in range(rows):
            line = f"C{i},Customer {i} {'x' * padding},c{i}@example.org\n"
            unpacked += len(line)
            out.write(line)
    source = SourceFile(path, FileFormat(type="csv"), ("Id",))
    tracemalloc.start()
    try:
        count = sum(1 for record in source if record.fields is not None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert peak < unpacked / 20, f"peak {peak:,} bytes for {unpacked:,} bytes of CSV"


# -- the command line ------------------------------------------------------------------


def test_the_cli_scans_summarizes_and_says_what_to_do(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    folder = _folder(project)
    path = write_csv(folder / "good.csv", _crm_rows(3))
    path.write_bytes(path.read_bytes().replace(b"C1,Contact,Anna", b"C1,Contact,An\xffna"))
    (folder / "empty.csv").write_bytes(b"")
    runner = CliRunner()

    result = runner.invoke(app, ["drop", "scan", str(project.root), "--system", "crm"])

    assert result.exit_code == 1, result.output
    assert "Dropped files" in result.output and "good.csv" in result.output
    assert "failed:" in result.output and "empty (0 bytes)" in result.output
    assert "next: check the export" in result.output
    load_id = json.loads((folder / "done" / "good.csv.report.json").read_text())["load_id"]
    listed = runner.invoke(app, ["drop", "quarantined", str(project.root), str(load_id)])
    assert listed.exit_code == 0, listed.output
    assert "good.csv line 3" in listed.output and "encoding.invalid" in listed.output

    again = runner.invoke(app, ["drop", "scan", str(project.root)])
    assert again.exit_code == 0 and "nothing waiting" in again.output
    missing = runner.invoke(app, ["drop", "quarantined", str(project.root), "999"])
    assert missing.exit_code == 1 and "no load 999" in missing.output


def test_a_loads_quarantine_is_listed_for_those_who_may_read_records(
    engine: Engine, project: Project
) -> None:
    path = write_csv(_folder(project) / "crm.csv", _crm_rows(3))
    path.write_bytes(path.read_bytes().replace(b"C2,Contact,Anna", b"C2,Contact,\x00Anna"))
    [result] = _scan(engine, project)
    assert result.load is not None
    with engine.connect() as conn:
        found, entries = drop.quarantined(conn, cli_actor(), result.load.load_id)
        with pytest.raises(NotAllowed):
            drop.quarantined(conn, Actor("user", "v", Role.VIEWER), result.load.load_id)
        with pytest.raises(NotFound, match="no load 999"):
            drop.quarantined(conn, cli_actor(), 999)
    assert (found["channel"], found["source_name"], found["status"]) == ("drop", "crm.csv", "done")
    assert [(e["location"], e["reasons"][0]["code"]) for e in entries] == [
        ("crm.csv line 4", "encoding.nul")
    ]
