"""`accord match run` end to end through the command line: results on disk, and every
kind of bad input refused with a clear message, never a traceback."""

from __future__ import annotations

import csv
import gc
import json
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from accord.cli.main import app
from accord.intake.readers import CSV_FIELD_LIMIT
from accord.match.evaluate import pairwise_scores
from tests.match.people import generate

runner = CliRunner()

SETTINGS = """\
id_column: id
engine: learned
max_block_size: 100
conflicts: [given_name, birth_date]
default_region: DE
columns:
  given_name: {from: first, standardize: given_name}
  family_name: {from: last, standardize: name}
  birth_date: {from: dob, standardize: date}
  email: {from: email, standardize: email}
  phone: {from: phone, standardize: phone}
  street: {from: street, standardize: text}
  postcode: {from: zip, standardize: postcode}
model:
  link_type: LINK_TYPE
  blocking:
    - [email]
    - [phone]
    - [family_name~metaphone, birth_date]
    - [postcode, given_name~root]
  comparisons:
    - name: given_name
      column: given_name
      levels: [exact, nickname, {jaro_winkler: 0.92}, {jaro_winkler: 0.8}, initial]
      term_frequency: true
    - name: family_name
      column: family_name
      levels: [exact, {jaro_winkler: 0.92}, {jaro_winkler: 0.8}]
      term_frequency: true
    - name: birth_date
      column: birth_date
      levels: [exact, swapped_day_month, {damerau_levenshtein: 1}]
    - name: email
      column: email
      levels: [exact, {exact: true, column: email~local}]
    - name: phone
      column: phone
      levels: [exact]
    - name: address
      column: street
      levels: [{all: [exact, {exact: true, column: postcode}]}, {jaro_winkler: 0.9}]
  correlated: [[family_name, address, phone]]
  thresholds: {link: 0.95, review: 0.5}
  training: {u_sample_pairs: 50000, seed: 3}
"""
HEADER = ["id", "first", "last", "dob", "email", "phone", "street", "zip"]
FIELDS = ["given_name", "family_name", "birth_date", "email", "phone", "street", "postcode"]


def _settings(tmp_path: Path, link_type: str = "dedupe_and_link", text: str = SETTINGS) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text.replace("LINK_TYPE", link_type), encoding="utf-8")
    return path


def _rows(people: int = 150, seed: int = 5) -> tuple[list[list[str]], dict[str, int]]:
    """Rows in the input's layout, and each id's person."""
    data = generate(people, seed=seed)
    rows, truth = [], {}
    seen: Counter[int] = Counter()
    for record, person in zip(data.records, data.truth, strict=True):
        seen[person] += 1
        record_id = f"p{person}-{seen[person]}"
        truth[record_id] = person
        rows.append([record_id, *(record[name] or "" for name in FIELDS)])
    return rows, truth


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _run(*args: str | Path) -> Result:
    return runner.invoke(app, ["match", "run", *map(str, args)])


def _ok(*args: str | Path) -> Result:
    result = _run(*args)
    assert result.exit_code == 0, result.output
    return result


def _refused(*args: str | Path, code: int = 1) -> str:
    result = _run(*args)
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # unwrapped


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_happy_path_writes_every_result(tmp_path: Path) -> None:
    rows, truth = _rows()
    people = _write_csv(tmp_path / "people.csv", rows)
    out = tmp_path / "out"
    result = _ok("--settings", _settings(tmp_path), "--input", f"people={people}", "--out", out)
    assert "Matched" in result.output and "results in" in result.output

    with (out / "clusters.csv").open(encoding="utf-8") as handle:
        assert handle.readline().strip() == "source,record_id,cluster_id"
    clusters = _read(out / "clusters.csv")
    assert sorted(r["record_id"] for r in clusters) == sorted(truth)  # each exactly once
    assert {r["source"] for r in clusters} == {"people"}
    numbers = {int(r["cluster_id"]) for r in clusters}
    assert numbers == set(range(1, len(numbers) + 1))

    with (out / "pairs.csv").open(encoding="utf-8") as handle:
        assert handle.readline().strip() == (
            "left_source,left_id,right_source,right_id,match_weight,probability,decision,rule"
        )
    pairs = _read(out / "pairs.csv")
    assert {p["decision"].split(":")[0] for p in pairs} <= {"link", "review"}
    assert any(p["decision"] == "link" for p in pairs)
    for pair in pairs:
        assert 0.0 <= float(pair["probability"]) <= 1.0
        assert pair["left_id"] in truth and pair["right_id"] in truth

    model = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in model["comparisons"]] == [
        "given_name",
        "family_name",
        "birth_date",
        "email",
        "phone",
        "address",
    ]
    assert 0 < model["prior"] < 1
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["records"] == len(rows)
    assert report["inputs"] == {"people": len(rows)}
    assert report["clusters"] == len(numbers)
    assert report["links"] == sum(1 for p in pairs if p["decision"] == "link")
    assert report["review"] == len(pairs) - report["links"]
    assert set(report["seconds"]) >= {"read", "blocking", "training", "scoring", "total"}
    assert report["blocking"]["pairs"] == report["pairs_scored"] > 0
    assert report["oversized_blocks"] == []

    assert report["invalid_values"] == {}  # every value standardized
    predicted = {r["record_id"]: int(r["cluster_id"]) for r in clusters}
    scores = pairwise_scores(predicted, truth)
    assert scores.precision >= 0.99 and scores.f1 >= 0.95  # measured: 1.0 and 0.98


def test_two_inputs_linked_only_across(tmp_path: Path) -> None:
    rows, truth = _rows()
    first: dict[int, list[str]] = {}
    for row in rows:
        first.setdefault(truth[row[0]], row)
    crm = _write_csv(tmp_path / "crm.csv", [r for r in rows if first[truth[r[0]]] is r])
    erp = _write_csv(tmp_path / "erp.csv", [r for r in rows if first[truth[r[0]]] is not r])
    out = tmp_path / "out"
    _ok(
        "--settings",
        _settings(tmp_path, "link_only"),
        "--input",
        f"crm={crm}",
        "--input",
        f"erp={erp}",
        "--out",
        out,
    )
    clusters = _read(out / "clusters.csv")
    assert Counter(r["source"] for r in clusters) == {
        "crm": len(first),
        "erp": len(rows) - len(first),
    }
    assert len({(r["source"], r["record_id"]) for r in clusters}) == len(rows)
    pairs = _read(out / "pairs.csv")
    assert pairs
    assert all(p["left_source"] != p["right_source"] for p in pairs)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["inputs"] == {"crm": len(first), "erp": len(rows) - len(first)}


def test_parquet_input_gives_what_the_same_csv_gives(tmp_path: Path) -> None:
    rows, _ = _rows(60)
    for number, row in enumerate(rows):
        row[0] = str(number)
    columns: dict[str, list[Any]] = {
        name: [row[i] or None for row in rows] for i, name in enumerate(HEADER)
    }
    columns["id"] = list(range(len(rows)))  # integer ids
    parquet = tmp_path / "people.parquet"
    pq.write_table(pa.table(columns), parquet)
    settings = _settings(tmp_path)
    _ok("--settings", settings, "--input", f"people={parquet}", "--out", tmp_path / "pq")
    csv_file = _write_csv(tmp_path / "people.csv", rows)
    _ok("--settings", settings, "--input", f"people={csv_file}", "--out", tmp_path / "csv")

    from_parquet = _read(tmp_path / "pq" / "clusters.csv")
    assert sorted(int(r["record_id"]) for r in from_parquet) == list(range(len(rows)))
    assert from_parquet == _read(tmp_path / "csv" / "clusters.csv")
    assert any(r["cluster_id"] != str(n + 1) for n, r in enumerate(from_parquet))  # some links


def test_a_header_only_input_gives_empty_results(tmp_path: Path) -> None:
    empty = _write_csv(tmp_path / "empty.csv", [])
    out = tmp_path / "out"
    _ok("--settings", _settings(tmp_path), "--input", f"x={empty}", "--out", out)
    assert _read(out / "clusters.csv") == []
    assert json.loads((out / "report.json").read_text())["records"] == 0


# ---- refused, with a clear message


def _one_input(tmp_path: Path, path: Path, name: str = "people") -> str:
    return _refused(
        "--settings", _settings(tmp_path), "--input", f"{name}={path}", "--out", tmp_path / "out"
    )


def test_missing_input_file(tmp_path: Path) -> None:
    output = _one_input(tmp_path, tmp_path / "nope.csv")
    assert f"error: {tmp_path / 'nope.csv'}: no such file" in output
    assert "hint: check the path after --input NAME=" in output
    assert not (tmp_path / "out").exists()


def test_duplicate_ids(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "dup.csv", [*rows[:3], [rows[1][0], *rows[3][1:]]])
    output = _one_input(tmp_path, path)
    assert f"id {rows[1][0]!r} appears twice (rows 3 and 5)" in output
    assert "'id' must be unique within an input" in output


def test_a_row_without_an_id(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "noid.csv", [rows[0], ["", *rows[1][1:]]])
    assert "row 3 has no 'id'" in _one_input(tmp_path, path)


def _without_id_column(tmp_path: Path) -> Path:
    rows, _ = _rows(5)
    return _write_csv(tmp_path / "x.csv", rows, ["key", *HEADER[1:]])


def _ragged(tmp_path: Path) -> Path:
    rows, _ = _rows(5)
    path = tmp_path / "ragged.csv"
    _write_csv(path, rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2] + ",extra"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_missing_id_column(tmp_path: Path) -> None:
    output = _one_input(tmp_path, _without_id_column(tmp_path))
    assert "no id column 'id'" in output
    assert "columns: key, first, last" in output and "set `id_column` in the settings" in output


def test_ragged_row(tmp_path: Path) -> None:
    path = _ragged(tmp_path)
    output = _one_input(tmp_path, path)
    assert f"{path}:3: 9 fields where the header has 8" in output
    assert "quote fields that contain the delimiter" in output


@pytest.mark.parametrize("make", [_without_id_column, _ragged])
def test_a_rejected_file_is_closed(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    """Regression: a file refused for a missing id column or a ragged row was left open
    (a ResourceWarning, an error under the suite's warning filter)."""
    path = make(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _one_input(tmp_path, path)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_repeated_header(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "x.csv", [], [*HEADER, "zip"])
    assert "header repeats zip" in _one_input(tmp_path, path)


@pytest.mark.parametrize("rows_before", [1, 3_000])
def test_invalid_utf8_is_refused(tmp_path: Path, rows_before: int) -> None:
    path = tmp_path / "latin1.csv"
    good = b"".join(b"%d,anna,smith,,,,,\n" % i for i in range(rows_before))
    path.write_bytes(",".join(HEADER).encode() + b"\n" + good + b"999,ren\xe9,smith,,,,,\n")
    output = _one_input(tmp_path, path)
    assert "utf-8" in output.lower()
    assert str(path) in output


@pytest.mark.parametrize("rows_before", [1, 3_000])
def test_invalid_utf8_is_located(tmp_path: Path, rows_before: int) -> None:
    """Regression: the file was decoded in 8 KiB chunks, so a bad byte was reported where
    its chunk was read ("cannot read the header", or a wrong line and an offset inside
    the chunk), not where it is."""
    path = tmp_path / "latin1.csv"
    good = b"".join(b"%d,anna,smith,,,,,\n" % i for i in range(rows_before))
    content = ",".join(HEADER).encode() + b"\n" + good + b"999,ren\xe9,smith,,,,,\n"
    path.write_bytes(content)
    output = _one_input(tmp_path, path)
    offset = content.index(b"\xe9")
    assert f"{path}: not UTF-8 at line {rows_before + 2} (byte {offset} of the file)" in output
    assert "hint: save the file as UTF-8" in output


@pytest.mark.parametrize("content", [b"", b"\n", b" \r\n\t"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    output = _one_input(tmp_path, path)
    assert f"{path}: the file is empty" in output and "a header row is needed" in output


def test_a_file_of_only_a_byte_order_mark_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf")
    output = _one_input(tmp_path, path)
    assert f"{path}: the file is empty" in output


def test_a_field_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(",".join(HEADER) + "\n1," + "x" * 1_100_000 + ",,,,,,\n", encoding="utf-8")
    assert f"{path}:2: a field of 1,100,000 characters, over the limit of 1,048,576" in (
        _one_input(tmp_path, path)
    )


def test_reading_a_match_input_leaves_intake_s_csv_limit_alone(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text(",".join(HEADER) + "\n1," + "x" * 1_100_000 + ",,,,,,\n", encoding="utf-8")
    _one_input(tmp_path, path)
    # it used to lower it to 1 MiB, and intake then failed files with fields above that
    assert csv.field_size_limit() == CSV_FIELD_LIMIT


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    assert "not a readable Parquet file" in _one_input(tmp_path, path)


def test_settings_naming_a_missing_input_column(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "x.csv", rows, [*HEADER[:-1], "postal"])
    output = _one_input(tmp_path, path)
    assert "no column 'zip' (for `columns.postcode`)" in output
    assert "columns: dob, email, first, last, phone, postal, street" in output


def test_settings_naming_a_column_that_is_not_prepared(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "x.csv", rows)
    text = SETTINGS.replace("- [phone]", "- [phnoe]").replace(
        "column: email~local", "column: email~domian"
    )
    settings = _settings(tmp_path, text=text)
    output = _refused("--settings", settings, "--input", f"x={path}", "--out", tmp_path / "o")
    assert "the settings file has 2 problems" in output
    assert "then run `accord match run` again" in output
    assert f"{settings} (model.blocking.1.0): no column 'phnoe'" in output
    assert "hint: did you mean 'phone'?" in output
    assert "(model.comparisons.3.levels.1): 'email~domian': no derivation 'domian'" in output
    assert "hint: derivations: " in output


def test_without_a_columns_section_every_shared_column_is_used(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "x.csv", rows)
    text = SETTINGS.split("columns:", 1)[0] + "model:" + SETTINGS.split("model:", 1)[1]
    output = _refused(
        "--settings", _settings(tmp_path, text=text), "--input", f"x={path}", "--out", tmp_path
    )
    # the model names prepared columns; the file has its own names
    assert "no column 'given_name'" in output
    assert "columns: dob, email, first, last, phone, street, zip" in output


def test_malformed_input_option(tmp_path: Path) -> None:
    output = _refused(
        "--settings", _settings(tmp_path), "--input", "people.csv", "--out", tmp_path, code=2
    )
    assert "'people.csv': write NAME=PATH, as in crm=crm.csv" in output
    for value in ("=x.csv", "crm="):
        assert "write NAME=PATH" in _refused(
            "--settings", _settings(tmp_path), "--input", value, "--out", tmp_path, code=2
        )


def test_the_same_input_name_twice(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "x.csv", rows)
    output = _refused(
        "--settings",
        _settings(tmp_path),
        "--input",
        f"crm={path}",
        "--input",
        f"crm={path}",
        "--out",
        tmp_path / "out",
    )
    assert "input name 'crm' is given twice" in output and "name each input once" in output


def test_missing_or_invalid_settings(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "x.csv", rows)
    output = _refused(
        "--settings", tmp_path / "none.yaml", "--input", f"x={path}", "--out", tmp_path / "o"
    )
    assert f"{tmp_path / 'none.yaml'}: no such settings file" in output
    bad = _settings(tmp_path, text=SETTINGS.replace("link: 0.95", "link: 1.5"))
    line = SETTINGS.splitlines().index("  thresholds: {link: 0.95, review: 0.5}") + 1
    output = _refused("--settings", bad, "--input", f"x={path}", "--out", tmp_path / "o")
    assert f"{bad}:{line}: model.thresholds.link: Input should be less than 1" in output
    rules = tmp_path / "rules.yaml"
    rules.write_text("engine: rules\nrules: [{name: r, equal: [email]}]\n", encoding="utf-8")
    output = _refused("--settings", rules, "--input", f"x={path}", "--out", tmp_path / "o")
    assert "`accord match run` runs the learned engine" in output
    assert "set `engine: learned`" in output


def test_output_folder_is_a_file(tmp_path: Path) -> None:
    rows, _ = _rows(5)
    path = _write_csv(tmp_path / "x.csv", rows)
    (tmp_path / "taken").write_text("x")
    _refused(
        "--settings",
        _settings(tmp_path),
        "--input",
        f"x={path}",
        "--out",
        tmp_path / "taken",
        code=2,
    )


def test_invalid_values_are_counted_per_record(tmp_path: Path) -> None:
    """Regression: an invalid value was counted once per distinct raw string."""
    rows, _ = _rows(5)
    for row in rows[:3]:
        row[3] = "not a date"
    path = _write_csv(tmp_path / "x.csv", rows)
    out = tmp_path / "out"
    _ok("--settings", _settings(tmp_path), "--input", f"x={path}", "--out", out)
    report = json.loads((out / "report.json").read_text())
    assert report["invalid_values"]["birth_date"] == 3


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    """Regression: Parquet rows were numbered from 2, as if after a CSV header line."""
    path = tmp_path / "dup.parquet"
    table = {name: ["x", "y", "z"] for name in HEADER}
    table["id"] = ["1", "2", "1"]
    pq.write_table(pa.table(table), path)
    assert "appears twice (rows 1 and 3)" in _one_input(tmp_path, path)


def test_link_only_with_one_input_is_refused(tmp_path: Path) -> None:
    rows, _ = _rows(20)
    only = _write_csv(tmp_path / "crm.csv", rows)
    output = _refused(
        "--settings",
        _settings(tmp_path, "link_only"),
        "--input",
        f"crm={only}",
        "--out",
        tmp_path / "out",
    )
    assert "link_only" in output and "there is one input" in output
    assert "give two or more --input" in output
    assert not (tmp_path / "out").exists()
