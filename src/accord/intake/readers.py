"""Streaming readers for CSV and JSON Lines files, plain or gzip.

A file is read line by line and never held whole. Problems with one row (invalid UTF-8, a
wrong number of fields, an oversized field, broken JSON) become reasons on that row, so the
rest of the file still loads; problems with the file as a whole (empty, no header, the wrong
delimiter) raise InputRejected before anything is stored.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import typing
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from accord.config.models import FileFormat
from accord.errors import InputRejected
from accord.intake.reasons import Reason

# csv's own limit is process-wide; ours is per mapping (max_field_bytes) and is checked
# row by row, so a giant field quarantines its row instead of aborting the file. Whoever
# else reads CSV in the process raises it to this if need be, and never lowers it.
CSV_FIELD_LIMIT = 256 * 1_048_576
csv.field_size_limit(CSV_FIELD_LIMIT)

RAW_KEEP_CHARS = 65_536  # how much of a bad row's text quarantine keeps
MAX_DEPTH = 32  # lists and objects within a record (pushed, polled, sent by a broker)
UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates: no store holds them
_SURROGATES = re.compile("[\udc80-\udcff]")
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class RawRecord:
    """One row or line as read: its fields, or the reasons it could not be read."""

    location: str  # "crm.csv line 41"
    fields: dict[str, Any] | None
    raw: str
    reasons: tuple[Reason, ...] = ()


@dataclass
class SourceFile:
    """An open input file; iterate it for RawRecords. `bytes_read` drives progress bars."""

    path: Path
    fmt: FileFormat
    required_columns: tuple[str, ...] = ()
    _raw: IO[bytes] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.kind = self.fmt.type or _kind_from_name(self.path)
        self.size = self.path.stat().st_size
        if self.size == 0:
            raise InputRejected(f"{self.path.name} is empty (0 bytes)", hint="check the export")

    @property
    def bytes_read(self) -> int:
        if self._raw is None:
            return 0
        return self.size if self._raw.closed else self._raw.tell()

    def __iter__(self) -> Iterator[RawRecord]:
        with self.path.open("rb") as raw:
            self._raw = raw
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: IO[bytes] = (
                typing.cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")) if compressed else raw
            )
            try:
                if self.kind == "csv":
                    yield from self._csv_records(stream)
                else:
                    yield from self._jsonl_records(stream)
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise InputRejected(
                    f"{self.path.name}: the gzip stream is damaged ({exc})",
                    hint="the rows before the damage were loaded; re-export the file",
                ) from exc

    def _lines(self, stream: IO[bytes]) -> Iterator[str]:
        encoding = self.fmt.encoding
        first = True
        for line in stream:
            data = line[3:] if first and line.startswith(b"\xef\xbb\xbf") else line
            first = False
            # bytes the encoding has no character for (invalid UTF-8; 0x81 in cp1252)
            # become lone surrogates, which quarantine their row as encoding.invalid
            codec = "utf-8" if encoding in ("utf-8", "utf-8-sig") else encoding
            yield data.decode(codec, "surrogateescape")

    def _csv_records(self, stream: IO[bytes]) -> Iterator[RawRecord]:
        lines = self._lines(stream)
        reader = csv.reader(lines, delimiter=self.fmt.delimiter, strict=False)
        try:
            header = next(reader)
        except StopIteration:
            raise InputRejected(f"{self.path.name} has no rows, not even a header") from None
        except csv.Error as exc:
            raise InputRejected(f"{self.path.name} line 1: cannot read the header: {exc}") from None
        self._check_header(header)
        width = len(header)
        previous_line = reader.line_num
        while True:
            start = previous_line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                previous_line = reader.line_num
                yield RawRecord(
                    f"{self.path.name} line {start}",
                    None,
                    "",
                    (Reason("row.unreadable", f"cannot parse this CSV row: {exc}"),),
                )
                continue
            previous_line = reader.line_num
            if not row or row == [""]:
                continue  # blank line
            location = f"{self.path.name} line {start}"
            raw = self.fmt.delimiter.join(row)
            reasons = list(_text_reasons(raw))
            if len(row) != width:
                reasons.append(
                    Reason(
                        "row.shape",
                        f"expected {width} fields as in the header, found {len(row)}",
                    )
                )
            fields = dict(zip(header, row, strict=False))
            if len(raw) * 4 > self.fmt.max_field_bytes:  # else no field can be over it
                reasons.extend(self._size_reasons(fields))
            if reasons:
                yield RawRecord(location, None, keep(raw), tuple(reasons))
            else:
                yield RawRecord(location, fields, raw)

    def _check_header(self, header: list[str]) -> None:
        name = self.path.name
        if len(set(header)) != len(header):
            twice = sorted({h for h in header if header.count(h) > 1})
            raise InputRejected(f"{name} line 1: columns named twice in the header: {twice}")
        missing = [c for c in self.required_columns if c not in header]
        if not missing:
            return
        if len(header) == 1:
            for delimiter in _CANDIDATE_DELIMITERS:
                if delimiter != self.fmt.delimiter and delimiter in header[0]:
                    raise InputRejected(
                        f"{name} line 1: the header is one column, {keep(header[0], 80)!r}",
                        hint=f"the file looks {delimiter!r}-delimited; set "
                        f"`format: {{delimiter: {json.dumps(delimiter)}}}` in the mapping",
                    )
        if not set(self.required_columns) & set(header):
            raise InputRejected(
                f"{name} line 1 does not look like a header (found {keep(str(header), 120)})",
                hint="the file needs a first row naming its columns: "
                + ", ".join(self.required_columns),
            )
        raise InputRejected(
            f"{name} line 1: the header lacks columns the mapping reads: {', '.join(missing)}",
            hint="fix the export or the `from:` entries in the mapping",
        )

    def _jsonl_records(self, stream: IO[bytes]) -> Iterator[RawRecord]:
        any_line = False
        for number, line in enumerate(self._lines(stream), start=1):
            text = line.strip()
            if not text:
                continue
            any_line = True
            location = f"{self.path.name} line {number}"
            reasons = list(_text_reasons(text))
            value: Any = None
            if not reasons:
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    reasons.append(Reason("row.json", f"not valid JSON: {exc.msg} at {exc.pos}"))
                except RecursionError:
                    reasons.append(Reason("row.json", "JSON nested too deeply"))
            if not reasons and not isinstance(value, dict):
                reasons.append(Reason("row.json", "each line must be a JSON object"))
            if not reasons and len(text) * 4 > self.fmt.max_field_bytes:
                reasons.extend(self._size_reasons(value))
            if reasons:
                yield RawRecord(location, None, keep(text), tuple(reasons))
            else:
                yield RawRecord(location, value, text)
        if not any_line:
            raise InputRejected(f"{self.path.name} holds no records (only blank lines)")

    def _size_reasons(self, fields: dict[str, Any]) -> Iterator[Reason]:
        return size_reasons(fields, self.fmt.max_field_bytes)


def size_reasons(fields: dict[str, Any], limit: int) -> Iterator[Reason]:
    """A reason for each text field over `limit` bytes (the mapping's max_field_bytes)."""
    for key, value in fields.items():
        if isinstance(value, str) and len(value) > limit // 4 and len(value.encode()) > limit:
            yield Reason(
                "field.too_large",
                f"field is {len(value.encode()):,} bytes; the limit is {limit:,} "
                "(format.max_field_bytes)",
                field=str(key),
            )


def _text_reasons(text: str) -> Iterator[Reason]:
    match = _SURROGATES.search(text)
    if match:
        yield Reason(
            "encoding.invalid",
            f"invalid UTF-8 at character {match.start()} of the row",
        )
    if "\x00" in text:
        yield Reason("encoding.nul", "the row contains NUL characters")


def keep(text: str, limit: int = RAW_KEEP_CHARS) -> str:
    """Text safe to store: invalid bytes and NULs replaced, cut to `limit` characters."""
    safe = _SURROGATES.sub("\ufffd", text).replace("\x00", "\ufffd")
    return safe if len(safe) <= limit else safe[:limit] + f"… [{len(safe) - limit:,} more]"


def _kind_from_name(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffixes and suffixes[-1] in (".csv", ".tsv", ".txt"):
        return "csv"
    raise InputRejected(
        f"cannot tell the format of {path.name} from its name",
        hint="name it .csv or .jsonl (optionally .gz), or set `format: {type: csv}`",
    )


def record_of(item: Any, location: str, max_field_bytes: int) -> RawRecord:
    """A record that arrived as a JSON value (pushed, polled, from a broker) as the load
    path takes it: its fields, or the reasons it cannot be stored as it is (not an object,
    nested too deep, a field over `max_field_bytes`, a NUL or lone surrogate anywhere)."""
    reasons: list[Reason] = []
    if deeper_than(item, MAX_DEPTH):
        reasons.append(
            Reason("record.json", f"the record is nested more than {MAX_DEPTH} levels deep")
        )
    elif not isinstance(item, dict):
        reasons.append(Reason("record.json", "a record must be an object"))
    else:
        reasons.extend(size_reasons(item, max_field_bytes))
        text = json.dumps(item, ensure_ascii=False)
        # NULs are written escaped and lone surrogates as they are: a text without either
        # has none (a key or value holding a backslash and "u0000" is looked at closely)
        unsafe = unsafe_text(item) if "\\u0000" in text or UNSAFE_TEXT.search(text) else None
        if unsafe is not None:
            what = "a NUL character" if unsafe == "\x00" else "a lone surrogate (\\u escape)"
            reasons.append(Reason("encoding.invalid", f"the record holds {what}"))
        if not reasons:
            return RawRecord(location, item, text)
    try:
        kept = keep(json.dumps(item))  # escaped: safe to store whatever the record holds
    except RecursionError:
        kept = f"(not kept: nested more than {MAX_DEPTH} levels deep, too deep to write)"
    return RawRecord(location, None, kept, tuple(reasons))


def deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest in `value` more than `limit` levels deep."""
    level = [value]
    for _ in range(limit + 1):
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


def unsafe_text(value: Any) -> str | None:
    """The first character no store can hold (NUL, a lone surrogate) in any text of
    `value`, keys included, or None."""
    if isinstance(value, str):
        found = UNSAFE_TEXT.search(value)
        return None if found is None else found.group()
    if isinstance(value, dict):
        return next(
            (c for k, v in value.items() for c in (unsafe_text(k), unsafe_text(v)) if c), None
        )
    if isinstance(value, list):
        return next((c for v in value if (c := unsafe_text(v))), None)
    return None
