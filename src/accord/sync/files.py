"""The file channel out: golden changes exported to a folder, for a system that takes
files (docs/sync.md).

Each round of delivery with changes writes one file, `<target>-<first change id>-<last
change id>.csv` (or `.jsonl`), with one row per change: its id, the golden id, the kind
of change (created, updated, merged, retired, repair), whether it is a tombstone, the
survivor of a merge, when it happened, and the delivered fields (the target's names,
the golden values; `plan.desired`). A file is written whole under a temporary name
(`.<name>.tmp`, a dotfile), flushed to disk, then renamed: a reader that ignores
dotfiles never sees half a file.

A crash after the rename and before the round is recorded leaves the changes pending.
The next round looks for them in the files already in the folder (those whose id range
meets its own) and counts the ones it finds as written, so no change is written to two
files; a round with the same changes finds its own file by name. Only a file the reader
took away in that window is not found: its changes are written again, in a file with the
same name when the round is the same. Every row carries its change id, unique, for a
reader to drop a row it has seen.

CSV: a header, then the rows, quoted where needed (RFC 4180, CRLF line ends, UTF-8).
A cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a
leading single quote, so that a spreadsheet opening the file shows the text rather than
running it as a formula (a phone number `+4930...` is written `'+4930...`); JSON Lines
has no such cells and is the format for programs.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from accord.config.sync import FILE_COLUMNS, FileTarget
from accord.store.engine import json_text, json_value
from accord.store.outbox import Change
from accord.sync.channel import Published, Unavailable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class FileChannel:
    def __init__(self, target: str, config: FileTarget, *, root: Path, fields: Sequence[str]):
        self.target = target
        self.config = config
        self.folder = root / config.folder  # an absolute folder stays as it is
        self.fields = list(fields)  # the columns after FILE_COLUMNS, in `fields:` order
        self.extension = config.format
        self._name = re.compile(rf"{re.escape(target)}-(\d+)-(\d+)\.{self.extension}")

    @property
    def last_failure(self) -> str | None:
        return None  # a round's changes are written together or not at all

    def close(self) -> None:
        pass

    def publish(self, items: Sequence[tuple[Change, dict[str, Any]]]) -> list[Published]:
        """Write the changes not in the folder yet to one file; returns every change as
        taken (`duplicate`: found in a file written before). Raises Unavailable when the
        folder cannot be read or written."""
        if not items:
            return []
        ids = [change.id for change, _ in items]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            found = self._written(min(ids), max(ids))
            rest = [(c, fields) for c, fields in items if c.id not in found]
            name = None
            if rest:
                name = f"{self.target}-{rest[0][0].id}-{rest[-1][0].id}.{self.extension}"
                self._write(name, self._content(rest))
        except OSError as exc:
            raise Unavailable(
                f"{self.target}: cannot write the export to {self.folder}: {exc.strerror or exc}"
            ) from None
        return [
            Published(c.id, None, True, found[c.id])
            if c.id in found
            else Published(c.id, None, False, name)
            for c, _ in items
        ]

    def _written(self, first: int, last: int) -> dict[int, str]:
        """change id -> the file holding it, of the files in the folder whose id range
        meets first..last."""
        found: dict[int, str] = {}
        for entry in os.scandir(self.folder):
            match = self._name.fullmatch(entry.name)
            if match is None or int(match[2]) < first or int(match[1]) > last:
                continue
            with open(entry.path, encoding="utf-8", newline="") as data:
                for change_id in self._change_ids(data):
                    found[change_id] = entry.name
        return found

    def _change_ids(self, data: Iterable[str]) -> Iterable[int]:
        if self.extension == "jsonl":
            for line in data:
                try:
                    row = json_value(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("change_id"), int):
                    yield row["change_id"]
            return
        for i, row in enumerate(csv.reader(data)):
            if i > 0 and row and row[0].isdigit():
                yield int(row[0])

    def _content(self, items: Sequence[tuple[Change, dict[str, Any]]]) -> str:
        if self.extension == "jsonl":
            return "".join(json_text(self._document(c, fields)) + "\n" for c, fields in items)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([*FILE_COLUMNS, *self.fields])
        for change, fields in items:
            row = self._document(change, {})
            cells = [row[c] for c in FILE_COLUMNS] + [fields.get(f) for f in self.fields]
            writer.writerow([_cell(value) for value in cells])
        return out.getvalue()

    @staticmethod
    def _document(change: Change, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "change_id": change.id,
            "golden_id": change.golden_id,
            "change": change.change,
            "tombstone": change.tombstone,
            "merged_into": change.merged_into,
            "changed_at": change.changed_at.isoformat(),
            "fields": fields,
        }

    def _write(self, name: str, content: str) -> None:
        """Write `name` whole: a temporary dotfile, flushed to disk, then renamed; the
        folder is flushed too, so the new name survives a crash of the machine."""
        temporary = self.folder / f".{name}.tmp"
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.folder / name)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _cell(value: Any) -> str:
    """A value as one CSV cell: text as it is, unless a spreadsheet would take it for a
    formula (then after a single quote); true/false; lists and objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json_text(value) if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
