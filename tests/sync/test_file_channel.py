"""Sync out to a folder of export files (the `file` channel): one file per round, written
whole then renamed, CSV safe to open in a spreadsheet, and a crash between the file and
its record never writing a change twice; on both stores."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from accord.config.sync import FILE_COLUMNS, FileTarget
from accord.store import outbox
from accord.store import sync as sync_store
from accord.store.outbox import Change
from accord.store.tables import sync_delivery
from accord.sync.dispatch import TargetDispatcher
from accord.sync.files import FileChannel
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, bob_row
from tests.sync.helpers import deliver, golden_data, load, with_billing_delivery

FIELDS = "{first_name: given_name, last_name: family_name, phone: phone, town: city}"


def _exporting(engine: Engine, root: Path, form: str, folder: str = "exports") -> Workspace:
    return with_billing_delivery(
        engine,
        root,
        "    deliver:\n"
        f"      file: {{folder: {folder}, format: {form}}}\n"
        f"      fields: {FIELDS}\n"
        "      retry: {max_attempts: 50, backoff: 20ms, max_backoff: 100ms}\n",
    )


def _rows(path: Path) -> list[dict[str, Any]]:
    """An export's rows as dicts (CSV cells as text)."""
    with path.open(encoding="utf-8", newline="") as data:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in data]
        return list(csv.DictReader(data))


def _exports(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def _changes(engine: Engine) -> list[Change]:
    with engine.connect() as conn:
        return outbox.after(conn, 0, 1000)


@pytest.mark.parametrize("form", ["csv", "jsonl"])
def test_each_round_writes_one_file_named_by_its_changes(
    engine: Engine, demo_project_dir: Path, tmp_path: Path, form: str
) -> None:
    workspace = _exporting(engine, demo_project_dir, form)
    folder = demo_project_dir / "exports"
    rows = anna_chain_and_bob()
    load(workspace, tmp_path, rows, "a.csv")
    assert deliver(workspace)["sent"] == 2
    first = _changes(engine)
    [written] = _exports(folder)  # nothing else: no temporary file left
    assert written.name == f"billing-{first[0].id}-{first[-1].id}.{form}"
    found = _rows(written)
    assert [int(r["change_id"]) for r in found] == [c.id for c in first]
    golden = golden_data(workspace)
    by_id = {r["golden_id"]: r for r in found}
    assert set(by_id) == set(golden)
    for golden_id, data in golden.items():
        row = by_id[golden_id]
        assert row["change"] == "created"
        fields = row["fields"] if form == "jsonl" else row
        assert fields["last_name"] == data["family_name"]
        assert fields["town"] == data["city"]
    if form == "csv":
        header = written.read_text(encoding="utf-8").splitlines()[0]
        assert header == ",".join([*FILE_COLUMNS, "first_name", "last_name", "phone", "town"])
        assert {r["tombstone"] for r in found} == {"false"}
        assert {r["phone"][:1] for r in found} == {"'"}  # +49…: a formula to a spreadsheet
    else:
        assert {r["tombstone"] for r in found} == {False}
        assert {r["fields"]["phone"][:3] for r in found} == {"+49"}  # as it is

    load(workspace, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
    assert deliver(workspace)["sent"] == 1
    update = _changes(engine)[-1]
    assert [p.name for p in _exports(folder)] == sorted(
        [written.name, f"billing-{update.id}-{update.id}.{form}"]
    )
    assert deliver(workspace)["taken"] == 0
    assert len(_exports(folder)) == 2


def _channel(tmp_path: Path, form: str, fields: list[str]) -> FileChannel:
    config = FileTarget.model_validate({"folder": "out", "format": form})
    return FileChannel("billing", config, root=tmp_path, fields=fields)


def _change(change_id: int, kind: str = "updated", merged_into: str | None = None) -> Change:
    return Change(
        change_id,
        f"C{change_id:07d}",
        kind,
        None,
        None,
        None,
        merged_into,
        None,
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


HOSTILE = {
    "formula": '=HYPERLINK("http://x.example","click")',
    "plus": "+1+1",
    "minus": "-2+3",
    "at": "@SUM(A1:A2)",
    "tab": "\t=1",
    "cr": "\r=1",
    "quoted": 'say "hi", then\nleave',
    "plain": "Müller, Hans",
    "number": 42,
}


def test_csv_cells_a_spreadsheet_would_run_are_quoted_text(tmp_path: Path) -> None:
    channel = _channel(tmp_path, "csv", list(HOSTILE))
    [done] = channel.publish([(_change(7), HOSTILE)])
    assert (done.file, done.duplicate) == ("billing-7-7.csv", False)
    [row] = _rows(tmp_path / "out" / "billing-7-7.csv")
    assert row["formula"] == "'" + HOSTILE["formula"]
    assert (row["plus"], row["minus"], row["at"]) == ("'+1+1", "'-2+3", "'@SUM(A1:A2)")
    assert (row["tab"], row["cr"]) == ("'\t=1", "'\r=1")
    assert row["quoted"] == HOSTILE["quoted"]  # quoted by CSV, read back whole
    assert (row["plain"], row["number"]) == ("Müller, Hans", "42")
    assert (row["change_id"], row["change"], row["merged_into"]) == ("7", "updated", "")


def test_jsonl_holds_the_values_as_they_are(tmp_path: Path) -> None:
    channel = _channel(tmp_path, "jsonl", list(HOSTILE))
    channel.publish([(_change(3, "merged", "C0000001"), {}), (_change(5), HOSTILE)])
    merged, updated = _rows(tmp_path / "out" / "billing-3-5.jsonl")
    assert (merged["tombstone"], merged["merged_into"], merged["fields"]) == (
        True,
        "C0000001",
        {},
    )
    assert updated["fields"] == HOSTILE
    assert updated["changed_at"] == "2026-01-02T03:04:05+00:00"


def test_a_file_is_written_under_a_temporary_name_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = _channel(tmp_path, "csv", ["town"])
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".billing-1-2.csv.tmp").write_text("half a fi")  # left by a crash
    seen: list[tuple[str, list[str]]] = []
    real_replace = __import__("os").replace

    def replace(source: Any, target: Any) -> None:
        seen.append((Path(source).name, sorted(p.name for p in folder.iterdir())))
        real_replace(source, target)

    monkeypatch.setattr("accord.sync.files.os.replace", replace)
    channel.publish([(_change(1), {"town": "Bonn"}), (_change(2), {"town": "Köln"})])
    # until the rename, the file was only there under its temporary (dot) name
    assert seen == [(".billing-1-2.csv.tmp", [".billing-1-2.csv.tmp"])]
    assert [p.name for p in _exports(folder)] == ["billing-1-2.csv"]
    assert [r["town"] for r in _rows(folder / "billing-1-2.csv")] == ["Bonn", "Köln"]


def test_a_crash_after_the_file_writes_no_change_twice(
    engine: Engine,
    demo_project_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace = _exporting(engine, demo_project_dir, "jsonl")
    folder = demo_project_dir / "exports"
    rows = anna_chain_and_bob()
    load(workspace, tmp_path, rows, "a.csv")
    real_finish = sync_store.finish

    def crash(*args: Any) -> None:
        raise RuntimeError("the process died before recording the round")

    monkeypatch.setattr(sync_store, "finish", crash)
    dispatcher = TargetDispatcher(engine, workspace.project, "billing")
    try:
        with pytest.raises(RuntimeError, match="died"):
            dispatcher.round()
    finally:
        dispatcher.close()
    [written] = _exports(folder)
    first = _rows(written)
    # meanwhile Bob changes again: the next round has the first two and his change
    load(workspace, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
    monkeypatch.setattr(sync_store, "finish", real_finish)
    # Anna's and Bob's first changes found in the file, then Bob's change in a new one
    assert deliver(workspace)["sent"] == 3
    files = _exports(folder)
    assert len(files) == 2 and _rows(written) == first  # the first file untouched
    ids = [r["change_id"] for f in files for r in _rows(f)]
    assert sorted(ids) == [c.id for c in _changes(engine)]  # each change once
    with engine.connect() as conn:
        outcomes = conn.execute(sync_delivery.select().order_by(sync_delivery.c.change_id)).all()
    assert [o.outcome for o in outcomes[:2]] == [{"file": written.name, "duplicate": True}] * 2


def test_the_same_round_again_finds_its_own_file(tmp_path: Path) -> None:
    channel = _channel(tmp_path, "csv", ["town"])
    items = [(_change(4), {"town": "Bonn"}), (_change(9), {"town": "Ulm"})]
    channel.publish(items)
    again = channel.publish(items)
    assert [(p.file, p.duplicate) for p in again] == [("billing-4-9.csv", True)] * 2
    assert [p.name for p in _exports(tmp_path / "out")] == ["billing-4-9.csv"]


def test_a_folder_that_cannot_be_written_keeps_the_changes_waiting(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    workspace = _exporting(engine, demo_project_dir, "csv")
    obstacle = demo_project_dir / "exports"
    obstacle.write_text("a file where the folder should be")
    load(workspace, tmp_path, anna_chain_and_bob(), "a.csv")
    dispatcher = TargetDispatcher(engine, workspace.project, "billing")
    try:
        report = dispatcher.round()
    finally:
        dispatcher.close()
    assert (report.sent, report.retrying, report.dead) == (0, 2, 0)
    assert report.error is not None and "cannot write the export to" in report.error
    obstacle.unlink()
    assert deliver(workspace)["sent"] == 2
    # in one file or two (each change waited a back-off of its own, with jitter), once
    ids = [int(r["change_id"]) for f in _exports(obstacle) for r in _rows(f)]
    assert sorted(ids) == [c.id for c in _changes(engine)]
