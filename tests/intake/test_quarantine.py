"""Quarantine (inspect, correct, replay, discard) and withdrawing a load, on both stores:
a bad row corrected and replayed is stored and matched through the path of any load;
one still bad stays open with its new reasons, filed once; nothing is stored twice; a
withdrawn load's versions stop being current, and the golden records follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from accord.config.loader import load_project
from accord.errors import Conflict, InputRejected, NotAllowed, NotFound
from accord.golden.resolve import resolve
from accord.govern import audit
from accord.govern.permissions import Actor, Role
from accord.intake import loads, quarantine
from accord.intake.load import load_file
from accord.store import records
from accord.store.tables import (
    audit_log,
    canonical_record,
    crosswalk,
    golden_record,
    load,
    record_head,
    source_record,
)
from accord.store.tables import quarantine as quarantine_table
from accord.workspace import Workspace
from tests.factories import crm_row, write_csv

ADMIN = Actor("cli", "tester", Role.ADMIN)
VIEWER = Actor("user", "viewer", Role.VIEWER)


def _load(ws: Workspace, tmp_path: Path, rows: list[dict[str, str]], name: str) -> int:
    report = load_file(ws.engine, ws.project, "crm", write_csv(tmp_path / name, rows), actor="t")
    return report.load_id


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _entries(ws: Workspace, **filters: Any) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        return quarantine.entries(conn, ADMIN, **filters).items


def _head(ws: Workspace, source_id: str) -> tuple[int, str] | None:
    with ws.engine.connect() as conn:
        row = conn.execute(
            select(record_head.c.version, record_head.c.content_hash).where(
                record_head.c.source_id == source_id
            )
        ).first()
    return None if row is None else (row.version, row.content_hash)


def _golden_data(ws: Workspace) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        return [
            dict(r.data)
            for r in conn.execute(
                select(golden_record.c.data).where(golden_record.c.status == "active")
            )
        ]


def _nameless(source_id: str, **values: str) -> dict[str, str]:
    return crm_row(source_id, FirstName="", LastName="", **values)


def test_a_bad_row_corrected_and_replayed_is_stored_and_matched(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    load_id = _load(ws, tmp_path, [crm_row("C1"), _nameless("C2")], "crm.csv")
    [entry] = _entries(ws)
    assert entry["load_id"] == load_id and entry["source_id"] == "C2"
    assert [r["code"] for r in entry["reasons"]] == ["name.missing"]
    assert _entries(ws, reason="name.missing") == [entry]
    assert _entries(ws, reason="email.invalid") == []
    with ws.engine.connect() as conn:
        shown = quarantine.entry(conn, ADMIN, entry["id"])
    assert shown["location"] == "crm.csv line 3" and "C2" in shown["raw"]

    corrected = quarantine.correct(
        ws.engine,
        ws.project,
        entry["id"],
        actor=ADMIN,
        changes={"FirstName": "Anna", "LastName": "Schmidt"},
    )
    assert corrected["correction"]["LastName"] == "Schmidt"
    assert corrected["fields"]["LastName"] == ""  # the original is kept
    [report] = quarantine.replay(ws.engine, ws.project, actor=ADMIN, ids=[entry["id"]])
    assert (report.replayed, report.still_failing) == (1, 0)
    assert report.load is not None and report.load.new == 1
    with ws.engine.connect() as conn:
        after = quarantine.entry(conn, ADMIN, entry["id"])
        channel = conn.execute(select(load.c.channel).where(load.c.id == report.load_id)).scalar()
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
        assert audit.verify(conn).ok
    assert (after["status"], after["replay_load_id"], channel) == (
        "replayed",
        report.load_id,
        "replay",
    )
    assert {"quarantine.corrected", "quarantine.replayed"} <= set(actions)

    resolved = resolve(ws.engine, ws.project, actor="t")
    assert resolved.records == 2
    assert resolved.assignment[("crm", "C1")] == resolved.assignment[("crm", "C2")]

    # replaying again: refused by id, nothing open to replay-all, nothing stored twice
    with pytest.raises(Conflict, match="is replayed"):
        quarantine.replay(ws.engine, ws.project, actor=ADMIN, ids=[entry["id"]])
    again = quarantine.replay(ws.engine, ws.project, actor=ADMIN, system="crm")
    assert again == []
    assert _count(ws.engine, source_record) == 2


def test_a_still_bad_record_stays_open_with_its_new_reasons_filed_once(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    _load(ws, tmp_path, [_nameless("C2")], "crm.csv")
    [entry] = _entries(ws)
    quarantine.correct(
        ws.engine, ws.project, entry["id"], actor=ADMIN, changes={"Id": ""}
    )  # worse: no source id now
    [report] = quarantine.replay(ws.engine, ws.project, actor=ADMIN, system="crm")
    assert (report.replayed, report.still_failing) == (0, 1)
    [still] = _entries(ws)
    assert still["id"] == entry["id"] and still["status"] == "open"
    assert "source_id.missing" in [r["code"] for r in still["reasons"]]
    assert _count(ws.engine, quarantine_table) == 1
    assert _count(ws.engine, source_record) == 0
    # the same file loaded again files nothing twice either
    _load(ws, tmp_path, [_nameless("C2")], "crm.csv")
    assert _count(ws.engine, quarantine_table) == 1


def test_replay_of_every_open_entry_after_a_mapping_fix_needs_no_correction(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Rows that failed for the mapping's sake are replayed from their fields as read,
    under the mapping as it is now, with no correction; a second replay stores nothing."""
    ws = workspace
    _load(ws, tmp_path, [_nameless("C2")], "a.csv")
    _load(ws, tmp_path, [_nameless("C3")], "b.csv")
    assert [e["reasons"][0]["code"] for e in _entries(ws)] == ["name.missing"] * 2
    mapping = ws.root / "mappings" / "crm.yaml"
    text = mapping.read_text(encoding="utf-8")
    old = "family_name: {from: LastName, only_for: person}"
    assert old in text
    mapping.write_text(
        text.replace(old, "family_name: {from: LastName, only_for: person, default: Unknown}"),
        encoding="utf-8",
    )
    fixed = load_project(ws.root)

    [report] = quarantine.replay(ws.engine, fixed, actor=ADMIN)

    assert (report.entries, report.replayed) == (2, 2)
    assert _count(ws.engine, record_head) == 2
    assert quarantine.replay(ws.engine, fixed, actor=ADMIN) == []
    assert _count(ws.engine, source_record) == 2


def test_discard_is_audited_and_final(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    _load(ws, tmp_path, [_nameless("C2")], "crm.csv")
    [entry] = _entries(ws)
    with pytest.raises(InputRejected, match="say why"):
        quarantine.discard(ws.engine, entry["id"], "  ", actor=ADMIN)
    done = quarantine.discard(ws.engine, entry["id"], "test row", actor=ADMIN)
    assert (done["status"], done["note"]) == ("discarded", "test row")
    with pytest.raises(Conflict, match="discarded: test row"):
        quarantine.discard(ws.engine, entry["id"], "again", actor=ADMIN)
    with pytest.raises(Conflict):
        quarantine.correct(ws.engine, ws.project, entry["id"], actor=ADMIN, changes={"A": "b"})
    with pytest.raises(NotFound, match="no quarantine entry 999"):
        quarantine.replay(ws.engine, ws.project, actor=ADMIN, ids=[999])
    with pytest.raises(NotAllowed):
        quarantine.discard(ws.engine, entry["id"], "x", actor=VIEWER)
    assert _entries(ws, status="discarded")[0]["id"] == entry["id"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"LastName": "x" * 2_000_000}, "limit is"),
        ({"LastName": "Sch\x00midt"}, "NUL character"),
        ({"LastName": "Sch\udcffmidt"}, "invalid UTF-8"),
        ({"Last\x00Name": "x"}, "NUL character"),
        ({"LastName": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "nested"),
        ({f"F{i}": "x" for i in range(600)}, "fields; the limit"),
        ({"LastName": float("nan")}, "not valid JSON"),
    ],
)
def test_hostile_corrections_are_refused_and_change_nothing(
    workspace: Workspace, tmp_path: Path, changes: dict[str, Any], error: str
) -> None:
    ws = workspace
    _load(ws, tmp_path, [_nameless("C2")], "crm.csv")
    [entry] = _entries(ws)
    with pytest.raises(InputRejected, match=error):
        quarantine.correct(ws.engine, ws.project, entry["id"], actor=ADMIN, changes=changes)
    with ws.engine.connect() as conn:
        assert quarantine.entry(conn, ADMIN, entry["id"])["correction"] is None


def test_corrected_text_is_read_as_a_row_or_a_json_object(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    _load(ws, tmp_path, [_nameless("C2")], "crm.csv")
    [entry] = _entries(ws)
    columns = list(entry_fields := quarantine.replayable(_full(ws, entry["id"])) or {})
    row = dict(entry_fields, LastName="Row")
    done = quarantine.correct(
        ws.engine, ws.project, entry["id"], actor=ADMIN, text=",".join(row[c] for c in columns)
    )
    assert done["correction"]["LastName"] == "Row"
    with pytest.raises(InputRejected, match="has 2 fields"):
        quarantine.correct(ws.engine, ws.project, entry["id"], actor=ADMIN, text="a,b")
    with pytest.raises(InputRejected, match="not a valid JSON object"):
        quarantine.correct(ws.engine, ws.project, entry["id"], actor=ADMIN, text="{broken")


def _full(ws: Workspace, entry_id: int) -> dict[str, Any]:
    with ws.engine.connect() as conn:
        return quarantine.entry(conn, ADMIN, entry_id)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300))
def test_any_corrected_text_is_stored_or_refused_clearly(
    sqlite_engine: Engine, demo_project_dir: Path, tmp_path: Path, text: str
) -> None:
    from accord.settings import Settings  # noqa: PLC0415

    ws = Workspace(demo_project_dir, sqlite_engine, Settings())
    if not _count(ws.engine, quarantine_table):
        _load(ws, tmp_path, [_nameless("C2")], "crm.csv")
    entry = _entries(ws)[0]
    try:
        done = quarantine.correct(ws.engine, ws.project, entry["id"], actor=ADMIN, text=text)
    except InputRejected as exc:
        assert exc.message  # noqa: PT017  (any text: refused with a message, or stored)
    else:
        assert isinstance(done["correction"], dict)


# ---- withdrawing a load


def test_withdrawing_a_load_that_created_records(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    _load(ws, tmp_path, [crm_row("C1")], "first.csv")
    second = _load(
        ws,
        tmp_path,
        [
            crm_row(
                "C9",
                FirstName="Wilhelmina",
                LastName="Zweig",
                Email="wz@example.org",
                Phone="+49 89 7654321",
            ),
            _nameless("C8"),
        ],
        "second.csv",
    )
    resolve(ws.engine, ws.project, actor="t")
    assert any(d.get("family_name") == "Zweig" for d in _golden_data(ws))

    report = loads.withdraw(ws.engine, second, actor=ADMIN)
    assert (report.versions, report.removed, report.reverted, report.discarded) == (1, 1, 0, 1)
    assert _head(ws, "C9") is None and _head(ws, "C1") is not None
    assert _count(ws.engine, source_record) == 2  # nothing deleted
    [entry] = _entries(ws, status="discarded")
    assert entry["load_id"] == second
    with ws.engine.connect() as conn:
        shown = loads.load(conn, ADMIN, second)
        assert audit.verify(conn).ok
    assert shown["status"] == "withdrawn" and shown["counts"]["withdrawal"]["removed"] == 1

    resolved = resolve(ws.engine, ws.project, actor="t")
    assert resolved.removed == 1 and resolved.retired == 1
    assert not any(d.get("family_name") == "Zweig" for d in _golden_data(ws))
    assert _count(ws.engine, crosswalk, crosswalk.c.source_id == "C9") == 0

    with pytest.raises(Conflict, match="withdrawn already"):
        loads.withdraw(ws.engine, second, actor=ADMIN)
    with pytest.raises(NotFound, match="no load 999"):
        loads.withdraw(ws.engine, 999, actor=ADMIN)
    with pytest.raises(NotAllowed):
        loads.withdraw(ws.engine, second, actor=Actor("user", "s", Role.STEWARD))

    # loaded again, the record is a new version numbered after the withdrawn one
    _load(ws, tmp_path, [crm_row("C9", LastName="Zweig")], "third.csv")
    assert _head(ws, "C9") is not None and _head(ws, "C9")[0] == 2  # type: ignore[index]


def test_withdrawing_a_load_that_only_mapped_records_again_keeps_their_new_mapping(
    workspace: Workspace, tmp_path: Path
) -> None:
    """A load of unchanged content under a new mapping version stores no source version,
    only canonical records mapped again (`remapped`): withdrawing it reverts nothing,
    since what the current mapping makes of the same content is not the load's to take
    back (docs/quarantine.md)."""
    ws = workspace
    path = write_csv(tmp_path / "crm.csv", [crm_row("C1")])
    load_file(ws.engine, ws.project, "crm", path, actor="t")
    mapping = ws.root / "mappings" / "crm.yaml"
    mapping.write_text(mapping.read_text().replace("  city: City\n", ""))
    remapping = load_file(ws.engine, load_project(ws.root), "crm", path, actor="t")
    assert remapping.remapped == 1

    report = loads.withdraw(ws.engine, remapping.load_id, actor=ADMIN)

    assert (report.versions, report.reverted, report.removed) == (0, 0, 0)
    with ws.engine.connect() as conn:
        [current] = list(records.current_records(conn, "customer"))
    assert "city" not in current.data  # still the new mapping's record
    assert _count(ws.engine, canonical_record) == 2


def test_withdrawing_a_load_reverts_to_the_version_before_and_leaves_later_ones(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    _load(
        ws,
        tmp_path,
        [
            crm_row("C1"),
            crm_row(
                "C2",
                FirstName="Bob",
                LastName="Jones",
                Email="bob@example.com",
                Phone="+49 40 111222",
            ),
        ],
        "v1.csv",
    )
    v1 = _head(ws, "C1")
    middle = _load(
        ws,
        tmp_path,
        [
            crm_row("C1", City="Hamburg"),
            crm_row(
                "C2",
                FirstName="Bob",
                LastName="Jones",
                Email="bob@example.com",
                Phone="+49 40 111222",
                City="Köln",
            ),
        ],
        "v2.csv",
    )
    _load(
        ws,
        tmp_path,
        [
            crm_row(
                "C2",
                FirstName="Bob",
                LastName="Jones",
                Email="bob@example.com",
                Phone="+49 40 111222",
                City="Bonn",
            )
        ],
        "v3.csv",
    )
    later = _head(ws, "C2")
    resolve(ws.engine, ws.project, actor="t")
    assert any(d.get("city") == "Hamburg" for d in _golden_data(ws))

    report = loads.withdraw(ws.engine, middle, actor=ADMIN)
    assert (report.reverted, report.superseded, report.removed) == (1, 1, 0)
    assert report.examples == {"reverted": ["crm:C1"], "superseded": ["crm:C2"]}
    assert _head(ws, "C1") == v1
    assert _head(ws, "C2") == later  # not resurrected nor hidden

    resolve(ws.engine, ws.project, actor="t")
    cities = {d.get("city") for d in _golden_data(ws)}
    assert "Hamburg" not in cities and "Köln" not in cities
    assert {"Berlin", "Bonn"} <= cities
