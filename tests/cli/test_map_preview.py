"""`accord map preview`: a mapping tried on a file's first rows, with no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accord.cli import output
from accord.config import load_project
from accord.errors import InputRejected
from accord.intake.preview import MAX_PREVIEW_ROWS, preview
from tests.cli.helpers import run as _run
from tests.factories import billing_row, erp_row, write_csv, write_jsonl


@pytest.fixture(autouse=True)
def _no_database(_embedded_store: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database nobody can reach: the preview must not need one. A wide console, so
    that a reason is on one line of the output."""
    monkeypatch.setenv("ACCORD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setattr(output.console, "width", 250)


def _erp_file(tmp_path: Path) -> Path:
    rows = [
        erp_row(KUNNR="1", NAME1="Hans Müller", SMTP_ADDR="hans@example.com"),
        erp_row(KUNNR="2", KTOKD="FIRM", NAME1="Acme GmbH", LAND1="", STCEG="DE123456789"),
        erp_row(KUNNR="3", KTOKD="ALIEN", NAME1="[bold]X[/bold]"),
        erp_row(KUNNR="1", NAME1="Hans Meier"),  # the same id, other content
        erp_row(KUNNR="4", SMTP_ADDR="not an address"),
        erp_row(KUNNR="5"),
    ]
    return write_csv(tmp_path / "erp.csv", rows, delimiter=";")


def test_preview_shows_source_and_canonical_side_by_side(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    before = sorted(p.name for p in demo_project_dir.rglob("*"))
    out = _run(
        "map", "preview", demo_project_dir, _erp_file(tmp_path), "--system", "erp", "--rows", "5"
    )
    assert "erp.csv line 2  ok  id 1" in out
    assert "source field" in out and "canonical field" in out
    assert "SMTP_ADDR" in out and "hans@example.com" in out
    # the demo computes an empty country from the VAT id, and its project rule is quiet
    assert "erp.csv line 3  ok  id 2" in out
    assert "vocabulary.unknown (kind)" in out
    assert "[bold]X[/bold]" in out  # source text is shown, never taken as markup
    assert "source_id.repeated" in out and "first at erp.csv line 2" in out
    assert "email.invalid (email)" in out
    assert "line 7" not in out  # --rows 5
    assert "5 rows: 2 ok, 1 flagged, 2 quarantined; nothing was stored" in out
    assert "next: fix the mapping" in out
    assert sorted(p.name for p in demo_project_dir.rglob("*")) == before  # no store made


def test_preview_as_json(demo_project_dir: Path, tmp_path: Path) -> None:
    out = _run("map", "preview", demo_project_dir, _erp_file(tmp_path), "-s", "erp", "--json")
    rows = json.loads(out)
    assert [r["status"] for r in rows] == [
        "ok",
        "ok",
        "quarantined",
        "quarantined",
        "flagged",
        "ok",
    ]
    assert rows[1]["canonical"]["country"] == "DE"  # computed from STCEG
    assert rows[2]["reasons"][0]["code"] == "vocabulary.unknown"
    assert rows[0]["source"]["KUNNR"] == "1"


def test_preview_of_json_lines_and_unreadable_rows(demo_project_dir: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "billing.jsonl", [billing_row("B1"), billing_row("B2")])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"account_id": "B3", broken\n')
    rows = json.loads(_run("map", "preview", demo_project_dir, path, "-s", "billing", "--json"))
    assert [r["status"] for r in rows][:2] == ["ok", "ok"]
    assert rows[2]["source"] is None
    assert rows[2]["reasons"][0]["code"] == "row.json"
    assert "broken" in rows[2]["raw"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--system", "sap"], "no system named 'sap'"),
        (["--system", "erp", "--rows", "0"], "a preview shows 1 to 1,000 rows"),
        (["--system", "erp", "--rows", str(MAX_PREVIEW_ROWS + 1)], "a preview shows 1 to"),
    ],
)
def test_bad_arguments_say_what_to_do(
    demo_project_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = _run("map", "preview", demo_project_dir, _erp_file(tmp_path), *args, code=1)
    assert message in out


def test_unusable_files_are_refused_with_a_hint(demo_project_dir: Path, tmp_path: Path) -> None:
    assert "no file at" in _run(
        "map", "preview", demo_project_dir, tmp_path / "nope.csv", "-s", "erp", code=1
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "empty (0 bytes)" in _run("map", "preview", demo_project_dir, empty, "-s", "erp", code=1)
    comma = write_csv(tmp_path / "comma.csv", [erp_row()], delimiter=",")
    out = _run("map", "preview", demo_project_dir, comma, "-s", "erp", code=1)
    assert "hint:" in out


def test_an_invalid_mapping_is_reported_before_the_file_is_read(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    mapping = demo_project_dir / "mappings" / "erp.yaml"
    mapping.write_text(mapping.read_text().replace("has(source.LAND1)", "has(source.LAND1"))
    out = _run("map", "preview", demo_project_dir, _erp_file(tmp_path), "-s", "erp", code=1)
    assert "erp.yaml:" in out and "field country `compute`: not a valid expression" in out


def test_preview_function_is_the_domain_and_stores_nothing(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    project = load_project(demo_project_dir)
    rows = preview(project, "erp", _erp_file(tmp_path), rows=2)
    assert [(r.location, r.status, r.source_id) for r in rows] == [
        ("erp.csv line 2", "ok", "1"),
        ("erp.csv line 3", "ok", "2"),
    ]
    with pytest.raises(InputRejected):
        preview(project, "erp", tmp_path / "missing.csv")
