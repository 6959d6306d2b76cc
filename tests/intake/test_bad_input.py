"""Bad input: a clear message saying what and where, and nothing good lost or changed."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from accord.config import load_project
from accord.errors import InputRejected
from accord.intake.load import load_file
from accord.store.tables import quarantine, record_head
from tests.factories import CRM_COLUMNS, crm_row, write_csv


@pytest.fixture
def project(demo_project_dir: Path):  # type: ignore[no-untyped-def]
    return load_project(demo_project_dir)


def _heads(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(record_head)).scalar_one())


def _reasons(engine: Engine) -> list[tuple[str, list[str]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantine.c.location, quarantine.c.reasons).order_by(quarantine.c.id)
        )
        return [(r.location, [x["code"] for x in r.reasons]) for r in rows]


def test_empty_file_is_rejected_before_anything_is_written(
    sqlite_engine: Engine,
    project,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "crm.csv"
    path.write_bytes(b"")
    with pytest.raises(InputRejected, match=r"crm.csv is empty \(0 bytes\)"):
        load_file(sqlite_engine, project, "crm", path, actor="t")
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(quarantine)).scalar_one() == 0


def test_wrong_delimiter_names_the_likely_one(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "crm.csv", [crm_row("C1")], delimiter=";")
    with pytest.raises(InputRejected) as caught:
        load_file(sqlite_engine, project, "crm", path, actor="t")
    assert "line 1: the header is one column" in caught.value.message
    assert caught.value.hint is not None and "';'-delimited" in caught.value.hint


def test_a_file_without_header_is_rejected(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text("C1,Contact,Anna,Schmidt\nC2,Contact,Bob,Jones\n")
    with pytest.raises(InputRejected, match="does not look like a header") as caught:
        load_file(sqlite_engine, project, "crm", path, actor="t")
    assert caught.value.hint is not None and "Id, RecordType" in caught.value.hint
    assert _heads(sqlite_engine) == 0


def test_missing_columns_are_named(sqlite_engine: Engine, project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    row = crm_row("C1")
    del row["Email"], row["Phone"]
    path = write_csv(tmp_path / "crm.csv", [row])
    with pytest.raises(InputRejected, match="lacks columns the mapping reads: Email, Phone"):
        load_file(sqlite_engine, project, "crm", path, actor="t")


def test_a_50_mb_field_quarantines_its_row_only(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    rows = [crm_row("C1"), crm_row("C2", Street="x" * 50_000_000), crm_row("C3")]
    path = write_csv(tmp_path / "crm.csv", rows)
    report = load_file(sqlite_engine, project, "crm", path, actor="t")
    assert (report.new, report.quarantined) == (2, 1)
    assert _reasons(sqlite_engine) == [("crm.csv line 3", ["field.too_large"])]
    with sqlite_engine.connect() as conn:
        raw = conn.execute(select(quarantine.c.raw)).scalar_one()
    assert len(raw) < 70_000  # what quarantine keeps is bounded


def test_invalid_utf8_and_nul_quarantine_their_rows(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "crm.csv", [crm_row("C1"), crm_row("C2"), crm_row("C3"), crm_row("C4")]
    )
    data = path.read_bytes().replace(b"C2,Contact,Anna", b"C2,Contact,An\xffna")
    data = data.replace(b"C3,Contact,Anna", b"C3,Contact,An\x00na")
    path.write_bytes(data)
    report = load_file(sqlite_engine, project, "crm", path, actor="t")
    assert (report.new, report.quarantined) == (2, 2)
    assert _reasons(sqlite_engine) == [
        ("crm.csv line 3", ["encoding.invalid"]),
        ("crm.csv line 4", ["encoding.nul"]),
    ]


def test_row_with_too_many_fields(sqlite_engine: Engine, project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "crm.csv", [crm_row("C1")])
    with path.open("a") as handle:
        handle.write("C9," + ",".join(["x"] * len(CRM_COLUMNS)) + "\n")
    report = load_file(sqlite_engine, project, "crm", path, actor="t")
    assert report.quarantined == 1
    assert _reasons(sqlite_engine) == [("crm.csv line 3", ["row.shape"])]


def test_quoted_newlines_keep_line_numbers_right(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    rows = [crm_row("C1", Street="Line one\nLine two"), crm_row("", FirstName="x")]
    path = write_csv(tmp_path / "crm.csv", rows)
    load_file(sqlite_engine, project, "crm", path, actor="t")
    assert _reasons(sqlite_engine) == [("crm.csv line 4", ["source_id.missing"])]


def test_jsonl_bad_lines_are_quarantined(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    good = (
        '{"account_id": "B1", "customer_type": "consumer", "first_name": "A",'
        ' "last_name": "B", "status": "active"}'
    )
    path = tmp_path / "billing.jsonl.gz"
    lines = [good, "{broken", "[1, 2]", "", good.replace("B1", "B2"), '"just a string"']
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    report = load_file(sqlite_engine, project, "billing", path, actor="t")
    assert (report.new, report.quarantined) == (2, 3)
    assert [loc for loc, _ in _reasons(sqlite_engine)] == [
        "billing.jsonl.gz line 2",
        "billing.jsonl.gz line 3",
        "billing.jsonl.gz line 6",
    ]


def test_a_damaged_gzip_keeps_what_loaded_and_says_so(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    rows = [crm_row(f"C{i}", Email=f"p{i}@x.org") for i in range(3000)]
    plain = write_csv(tmp_path / "crm.csv", rows).read_bytes()
    damaged = gzip.compress(plain)[: len(gzip.compress(plain)) // 2]
    path = tmp_path / "crm.csv.gz"
    path.write_bytes(damaged)
    with pytest.raises(InputRejected, match="gzip stream is damaged"):
        load_file(sqlite_engine, project, "crm", path, actor="t", batch_size=500)
    assert 0 < _heads(sqlite_engine) < 3000


def test_bad_rows_never_replace_good_versions(
    sqlite_engine: Engine,
    project,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    load_file(
        sqlite_engine, project, "crm", write_csv(tmp_path / "a.csv", [crm_row("C1")]), actor="t"
    )
    bad = write_csv(tmp_path / "b.csv", [crm_row("C1", BirthDate="31.02.1980")])
    report = load_file(sqlite_engine, project, "crm", bad, actor="t")
    assert (report.quarantined, report.changed) == (1, 0)
    with sqlite_engine.connect() as conn:
        version = conn.execute(select(record_head.c.version)).scalar_one()
    assert version == 1


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2000))
def test_arbitrary_bytes_get_an_answer_never_a_crash(
    body: bytes,
    sqlite_engine: Engine,
    project,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    header = ",".join(CRM_COLUMNS).encode() + b"\n"
    path = tmp_path / "fuzz.csv"
    path.write_bytes(header + body)
    try:
        report = load_file(sqlite_engine, project, "crm", path, actor="t")
    except InputRejected as exc:
        rejected = exc
    else:
        rejected = None
    if rejected is not None:
        assert rejected.message.startswith("fuzz.csv")
        return
    assert (
        report.read
        == report.new
        + report.changed
        + report.unchanged
        + report.quarantined
        + report.repeated_in_file
        + report.remapped
    )
