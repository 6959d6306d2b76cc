"""`accord match run`: the learned engine on plain files, outside any project, so that
anyone can run it on a public benchmark and compare.

Inputs are CSV (with a header) or Parquet files, each with a unique id column; each input
is one source. The settings are a project's `match:` block plus `id_column` and
`columns` (which input columns to compare, and how to standardize them).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord import standardize as std
from accord.config.loader import SETTINGS_HINT, load_match_settings
from accord.config.matching import ColumnPrep, StandaloneSettings
from accord.errors import InputRejected, ProjectInvalid
from accord.errors import Problem as SettingsProblem
from accord.intake.readers import CSV_FIELD_LIMIT
from accord.match.columns import Columns
from accord.match.learned import LearnedEngine, LearnedResult, Progress
from accord.match.settings_check import column_problems

MAX_FIELD_BYTES = 1_048_576
INVALID = object()  # a value standardization refused


@dataclass
class InputTable:
    name: str
    path: Path
    ids: list[str]
    rows: dict[str, list[str | None]]


@dataclass
class RunReport:
    records: int
    inputs: dict[str, int]
    clusters: int
    multi_record_clusters: int
    links: int
    review: int
    pairs_scored: int
    invalid_values: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    blocking: dict[str, Any] = field(default_factory=dict)
    oversized_blocks: list[dict[str, Any]] = field(default_factory=list)


def run(
    settings_path: Path,
    inputs: list[tuple[str, Path]],
    out: Path,
    *,
    progress: Progress | None = None,
) -> RunReport:
    say = progress or (lambda _: None)
    started = time.perf_counter()
    settings = load_match_settings(settings_path)
    if settings.engine != "learned":
        raise ProjectInvalid(
            [
                SettingsProblem(
                    str(settings_path),
                    "`accord match run` runs the learned engine",
                    "set `engine: learned` and give a `model` section",
                )
            ],
            what="the settings file",
            hint=SETTINGS_HINT,
        )
    assert settings.model is not None  # noqa: S101  (the learned engine has a model)
    if settings.model.link_type == "link_only" and len(inputs) < 2:
        raise InputRejected(
            "link_type is link_only, which links records across inputs, but there is one input",
            hint="give two or more --input NAME=PATH, or set link_type: dedupe_only",
        )
    names = [name for name, _ in inputs]
    for name in names:
        if names.count(name) > 1:
            raise InputRejected(f"input name {name!r} is given twice", hint="name each input once")
    tables = []
    for name, path in inputs:
        say(f"reading {name}")
        tables.append(read_input(name, path, settings.id_column))
    wanted = _column_plan(settings, tables)
    problems = column_problems(settings, set(wanted))
    if problems:
        raise ProjectInvalid(
            [
                SettingsProblem(f"{settings_path} ({'.'.join(map(str, p.loc))})", p.message, p.hint)
                for p in problems
            ],
            what="the settings file",
            hint=SETTINGS_HINT,
        )
    say("standardizing")
    columns, invalid = _columns(settings, wanted, tables)
    systems = [table.name for table in tables for _ in table.ids]
    read_seconds = time.perf_counter() - started
    result = LearnedEngine(settings).run(columns, systems=systems, progress=say)
    say("writing results")
    keys = [(table.name, record_id) for table in tables for record_id in table.ids]
    report = _write(out, settings, keys, result)
    report.inputs = {table.name: len(table.ids) for table in tables}
    report.invalid_values = invalid
    report.seconds = {"read": round(read_seconds, 3), **result.seconds}
    report.seconds["total"] = round(time.perf_counter() - started, 3)
    (out / "report.json").write_text(json.dumps(_report_dict(report), indent=2) + "\n")
    return report


def read_input(name: str, path: Path, id_column: str) -> InputTable:
    """A whole input as columns of strings (None for empty), checked for unique ids."""
    if not path.is_file():
        raise InputRejected(f"{path}: no such file", hint="check the path after --input NAME=")
    if path.suffix.lower() == ".parquet":
        header, rows = _parquet(path)
    else:
        header, rows = _csv(path)
    if id_column not in header:
        raise InputRejected(
            f"{path}: no id column {id_column!r}",
            hint="columns: " + ", ".join(header[:20]) + "; set `id_column` in the settings",
        )
    data: dict[str, list[str | None]] = {column: [] for column in header}
    for line, row in rows:
        if len(row) != len(header):
            raise InputRejected(
                f"{path}:{line}: {len(row)} fields where the header has {len(header)}",
                hint="fix the row or quote fields that contain the delimiter",
            )
        for column, value in zip(header, row, strict=True):
            data[column].append(value.strip() or None if value is not None else None)
    ids = data.pop(id_column)
    seen: dict[str, int] = {}
    first_row = 1 if path.suffix.lower() == ".parquet" else 2  # after a CSV header line
    for position, record_id in enumerate(ids, start=first_row):
        if record_id is None:
            raise InputRejected(f"{path}: row {position} has no {id_column!r}")
        if record_id in seen:
            raise InputRejected(
                f"{path}: id {record_id!r} appears twice (rows {seen[record_id]} and {position})",
                hint=f"{id_column!r} must be unique within an input",
            )
        seen[record_id] = position
    return InputTable(name, path, [str(i) for i in ids], data)


def _csv(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str | None]]]]:
    """The header and the rows (with their line numbers) of a CSV file, read whole:
    `accord match run` holds every input in memory anyway."""
    content = path.read_bytes()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise InputRejected(
            f"{path}: not UTF-8 at line {line} (byte {exc.start} of the file)",
            hint="save the file as UTF-8",
        ) from None
    if not text.strip():
        raise InputRejected(f"{path}: the file is empty", hint="a header row is needed")
    # csv's limit is the process's, intake's (`readers.CSV_FIELD_LIMIT`): never lowered
    # here; ours is checked below, row by row
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, list[str | None](row)) for row in reader if row]
    except csv.Error as exc:
        raise InputRejected(f"{path}:{reader.line_num}: {exc}") from None
    for line, row in rows:
        for value in row:
            if value is not None and len(value) > MAX_FIELD_BYTES:
                raise InputRejected(
                    f"{path}:{line}: a field of {len(value):,} characters, over the limit "
                    f"of {MAX_FIELD_BYTES:,}",
                    hint="shorten or leave out that column; match inputs hold names, "
                    "addresses and identifiers",
                )
    if not any(header):
        raise InputRejected(f"{path}: the file has no header row", hint="a header row is needed")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise InputRejected(f"{path}: header repeats {', '.join(duplicated)}")
    return header, iter(rows)


def _parquet(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str | None]]]]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise InputRejected(
            f"{path}: reading Parquet needs pyarrow", hint="pip install 'accord[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises many types for bad files)
        raise InputRejected(f"{path}: not a readable Parquet file: {exc}") from None
    header = list(table.column_names)
    columns = [
        [None if v is None else str(v) for v in table.column(name).to_pylist()] for name in header
    ]

    def rows() -> Iterator[tuple[int, list[str | None]]]:
        for index in range(table.num_rows):
            yield index + 1, [column[index] for column in columns]

    return header, rows()


def _column_plan(settings: StandaloneSettings, tables: list[InputTable]) -> dict[str, ColumnPrep]:
    """Which columns to build, from which input column, standardized how."""
    everywhere = set.intersection(*(set(t.rows) for t in tables)) if tables else set()
    if settings.columns:
        for name, prep in settings.columns.items():
            for table in tables:
                if prep.source not in table.rows:
                    raise InputRejected(
                        f"{table.path}: no column {prep.source!r} (for `columns.{name}`)",
                        hint="columns: " + ", ".join(sorted(table.rows)),
                    )
        return dict(settings.columns)
    return {name: ColumnPrep.model_validate({"from": name}) for name in sorted(everywhere)}


def _columns(
    settings: StandaloneSettings, plan: dict[str, ColumnPrep], tables: list[InputTable]
) -> tuple[Columns, dict[str, int]]:
    size = sum(len(t.ids) for t in tables)
    data: dict[str, list[str | None]] = {}
    invalid: dict[str, int] = {}
    for name, prep in plan.items():
        convert = _standardizer(prep.standardize, settings.default_region)
        cache: dict[str, object] = {}
        bad = 0
        values: list[str | None] = []
        for table in tables:
            for raw in table.rows[prep.source]:
                if raw is None:
                    values.append(None)
                    continue
                if raw not in cache:
                    try:
                        cache[raw] = convert(raw) or None
                    except std.InvalidValue:
                        cache[raw] = INVALID
                value = cache[raw]
                if value is INVALID:
                    bad += 1
                    values.append(None)
                else:
                    values.append(typing.cast("str | None", value))
        data[name] = values
        if bad:
            invalid[name] = bad
    return Columns(data, size), invalid


def _standardizer(kind: str, region: str | None) -> Callable[[str], str | None]:
    def digits(value: str) -> str | None:
        return "".join(ch for ch in value if ch.isdigit()) or None

    def date(value: str) -> str | None:
        formats = ("%Y-%m-%d", "%Y%m%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y")
        return std.date(value, formats).isoformat()

    table: dict[str, Callable[[str], str | None]] = {
        "text": lambda v: std.clean_text(v).casefold(),
        "name": std.name_key,
        "given_name": std.name_key,
        "email": std.email,
        "phone": lambda v: std.phone(v, region),
        "date": date,
        "digits": digits,
        "postcode": std.postcode,
        "none": lambda v: v,
    }
    return table[kind]


def _write(
    out: Path,
    settings: StandaloneSettings,
    keys: list[tuple[str, str]],
    result: LearnedResult,
) -> RunReport:
    out.mkdir(parents=True, exist_ok=True)
    cluster_of: dict[int, int] = {}
    with (out / "clusters.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "record_id", "cluster_id"])
        for number, group in enumerate(result.clusters, start=1):
            for record in group:
                cluster_of[record] = number
                writer.writerow([keys[record][0], keys[record][1], number])
    with (out / "pairs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "left_source",
                "left_id",
                "right_source",
                "right_id",
                "match_weight",
                "probability",
                "decision",
                "rule",
            ]
        )
        for decision, links in (("link", result.links), ("review", result.review)):
            for link in links:
                writer.writerow(
                    [
                        *keys[link.left],
                        *keys[link.right],
                        "" if link.weight is None else f"{link.weight:.4f}",
                        f"{link.probability:.6f}",
                        decision if link.reason is None else f"{decision}: {link.reason}",
                        link.rule,
                    ]
                )
    model = result.params.to_dict() if result.params else {}
    (out / "model.json").write_text(json.dumps(model, indent=2) + "\n")
    return RunReport(
        records=len(keys),
        inputs={},
        clusters=len(result.clusters),
        multi_record_clusters=sum(1 for group in result.clusters if len(group) > 1),
        links=len(result.links),
        review=len(result.review),
        pairs_scored=result.pairs_scored,
        invalid_values={},
        blocking=result.blocking,
        oversized_blocks=[{"rule": b.rule, "key": b.key, "size": b.size} for b in result.oversized],
    )


def _report_dict(report: RunReport) -> dict[str, Any]:
    return {
        "records": report.records,
        "inputs": report.inputs,
        "clusters": report.clusters,
        "multi_record_clusters": report.multi_record_clusters,
        "links": report.links,
        "review": report.review,
        "pairs_scored": report.pairs_scored,
        "invalid_values": report.invalid_values,
        "seconds": report.seconds,
        "blocking": report.blocking,
        "oversized_blocks": report.oversized_blocks,
        "python": sys.version.split()[0],
    }
