"""A mapping tried on a file's first rows, with nothing stored.

`accord map preview` shows, row by row, what a load would make of a file: the source
fields beside the canonical fields, the issues that would be flagged and the reasons a
row would go to quarantine. It reads the file with the same reader and maps with the
same mapper as a load (`load.py`), and repeats a load's in-file check for a source id
seen twice, but it needs no database and writes nothing: a mapping, its computed fields
and its rules can be tried before the first load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from accord.config.loader import Project
from accord.digest import digest as content_digest
from accord.errors import InputRejected
from accord.intake.load import Seen, repeated
from accord.intake.mapping import MappedRecord, RecordMapper
from accord.intake.readers import SourceFile
from accord.intake.reasons import Reason

MAX_PREVIEW_ROWS = 1_000

Status = Literal["ok", "flagged", "quarantined"]


@dataclass(frozen=True)
class PreviewRow:
    """One row as a load would take it: what was read, what it maps to, and why not."""

    location: str  # "erp.csv line 2"
    source: dict[str, Any] | None  # None: the row could not be read
    source_id: str | None
    canonical: dict[str, Any]
    issues: tuple[Reason, ...] = ()  # flagged: the record would load with these
    reasons: tuple[Reason, ...] = ()  # quarantined for these
    raw: str = ""  # the row's text, when it could not be read
    status: Status = field(init=False)

    def __post_init__(self) -> None:
        status: Status = "quarantined" if self.reasons else "flagged" if self.issues else "ok"
        object.__setattr__(self, "status", status)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "location": self.location,
            "status": self.status,
            "source_id": self.source_id,
            "source": self.source,
            "canonical": self.canonical,
            "issues": [r.as_dict() for r in self.issues],
            "reasons": [r.as_dict() for r in self.reasons],
        }
        if self.source is None:
            out["raw"] = self.raw
        return out


def preview(project: Project, system: str, path: Path, rows: int = 10) -> list[PreviewRow]:
    """Map the first `rows` records of `path` as `system`'s; store nothing.

    Raises InputRejected when the file as a whole is unusable (as a load would), or
    when `rows` is not between 1 and MAX_PREVIEW_ROWS."""
    if not 1 <= rows <= MAX_PREVIEW_ROWS:
        raise InputRejected(
            f"--rows {rows}: a preview shows 1 to {MAX_PREVIEW_ROWS:,} rows",
            hint="load the file to check all of it: `accord load`",
        )
    mapping = project.mapping(system)
    mapper = RecordMapper(mapping, project.config.systems[system])
    if not path.is_file():
        raise InputRejected(f"no file at {path}", hint="check the path")
    try:
        source = SourceFile(path, mapping.config.format, mapper.source_columns())
    except OSError as exc:
        raise InputRejected(f"cannot read {path}: {exc.strerror}") from exc
    seen: Seen = {}
    out: list[PreviewRow] = []
    for raw in islice(source, rows):
        if raw.fields is None:
            out.append(PreviewRow(raw.location, None, None, {}, reasons=raw.reasons, raw=raw.raw))
            continue
        result = mapper.map(raw.fields)
        if not isinstance(result, MappedRecord):
            out.append(
                PreviewRow(raw.location, raw.fields, result.source_id, {}, reasons=result.reasons)
            )
            continue
        out.append(_checked_for_repeats(raw.location, raw.fields, result, seen))
    return out


def _checked_for_repeats(
    location: str, fields: dict[str, Any], result: MappedRecord, seen: Seen
) -> PreviewRow:
    """A load keeps the first of a source id's rows and quarantines a later one with
    other content (`load.repeated`); the preview says the same."""
    repeat = repeated(
        seen, result.source_id, content_digest(fields), location, kept="would be kept"
    )
    if isinstance(repeat, Reason):
        return PreviewRow(location, fields, result.source_id, result.data, result.issues, (repeat,))
    return PreviewRow(location, fields, result.source_id, result.data, result.issues)
