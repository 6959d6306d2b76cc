"""Quarantine: inspect, correct, replay and discard the records intake could not store.

A record that fails reading, mapping or validation is filed by the `Batcher` as an open
entry, with its raw text, where it was (file and line, or batch position), the load that
met it, its reasons, and its fields when it could be read. From there a person can:

- correct it: store corrected fields next to the original, which is never changed;
- replay it: send it (its correction, else its fields as read, so a fixed mapping can
  take it now) through the very path of any load (`Batcher`: map, validate, store) as a
  new load of channel "replay". An entry that now passes is closed as `replayed`, naming
  that load; one that still fails stays open with its new reasons, and is not filed a
  second time (its raw text is already open in quarantine);
- discard it, with a reason.

Each replay chunk stores its records and closes their entries in one transaction, so a
replay that dies part of the way keeps what it did and can simply be run again; an entry
closed once is never replayed again. Every change of state is audited.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from accord.config.loader import Project
from accord.config.models import FileFormat
from accord.errors import Conflict, InputRejected, NotFound, TooLarge
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Permission, require
from accord.intake.load import Batcher, LoadReport, recorded_load
from accord.intake.mapping import RecordMapper
from accord.intake.readers import UNSAFE_TEXT, RawRecord, deeper_than, size_reasons
from accord.linked.intake import LinkedBatcher
from accord.linked.mapping import LinkedMapper
from accord.paging import Page, check_window
from accord.store import quarantine as store
from accord.store.engine import writing
from accord.store.golden import crosswalk_of

STATUSES = ("open", "replayed", "discarded")
REPLAY_CHUNK = 500  # entries replayed per transaction
MAX_CORRECTION_BYTES = 1_048_576  # a correction's fields, as JSON
MAX_CORRECTION_FIELDS = 500
MAX_DEPTH = 8  # lists and objects within a corrected record
MAX_NOTE_CHARS = 2000


# ---- reading


def entries(
    conn: Connection,
    actor: Actor,
    *,
    system: str | None = None,
    status: str | None = "open",
    reason: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Entries, newest first, by system, status and reason code (`email.invalid`, ...)."""
    require(actor, Permission.QUARANTINE_MANAGE)
    check_window(limit, offset)
    if status is not None and status not in STATUSES:
        raise InputRejected(f"unknown status {status!r}", hint="use " + ", ".join(STATUSES))
    items, total = store.list_entries(
        conn, system=system, status=status, reason=reason, limit=limit, offset=offset
    )
    return Page(items, total, limit, offset)


def entry(conn: Connection, actor: Actor, entry_id: int) -> dict[str, Any]:
    """One entry in full: raw text, location, load, reasons, fields, any correction."""
    require(actor, Permission.QUARANTINE_MANAGE)
    found = store.get_entry(conn, entry_id)
    if found is None:
        raise NotFound(
            f"no quarantine entry {entry_id}", hint="`accord quarantine list` shows the entries"
        )
    return found


def _open_entry(conn: Connection, entry_id: int) -> dict[str, Any]:
    found = store.get_entry(conn, entry_id, lock=True)
    if found is None:
        raise NotFound(
            f"no quarantine entry {entry_id}", hint="`accord quarantine list` shows the entries"
        )
    _check_open(found)
    return found


def _check_open(found: dict[str, Any]) -> None:
    if found["status"] == "open":
        return
    how = (
        f"stored by load {found['replay_load_id']}"
        if found["status"] == "replayed"
        else f"discarded: {found['note']}"
    )
    raise Conflict(
        f"quarantine entry {found['id']} is {found['status']} ({how}); only open entries "
        "can change",
        hint="nothing to do; `accord quarantine show` tells its story",
    )


def replayable(found: dict[str, Any]) -> dict[str, Any] | None:
    """What a replay sends for an entry: its correction, else its fields as read, else
    its raw text when that is a JSON object (a JSON Lines line, a pushed record)."""
    if found.get("correction") is not None:
        return dict(found["correction"])
    if found.get("fields") is not None:
        return dict(found["fields"])
    try:
        value = json.loads(found["raw"])
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# ---- correcting


def correct(
    engine: Engine,
    project: Project,
    entry_id: int,
    *,
    actor: Actor,
    fields: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """Store a correction for an open entry: the whole record (`fields`), some fields
    changed on what it holds (`changes`), or the corrected raw text (`text`: a JSON
    object, or for CSV a row in the columns of the fields as read). The original raw
    text and fields stay as they were. Returns the entry."""
    require(actor, Permission.QUARANTINE_MANAGE)
    if sum(x is not None for x in (fields, changes, text)) != 1:
        raise InputRejected("give exactly one of: the whole record, changed fields, raw text")
    with writing(engine) as conn:
        found = _open_entry(conn, entry_id)
        fmt = _format_of(conn, project, found)
        limit = fmt.max_field_bytes
        if text is not None:
            corrected = _from_text(fmt, found, text)
        elif changes is not None:
            base = replayable(found)
            if base is None:
                raise InputRejected(
                    f"quarantine entry {entry_id} holds no fields to change: its row could "
                    "not be read",
                    hint="give the whole record (--fields '{...}' or --text)",
                )
            corrected = base | changes
        else:
            corrected = fields
        checked = check_correction(corrected, limit)
        store.set_correction(conn, entry_id, checked, by=actor.label)
        before = replayable(found) or {}
        changed = sorted(
            k for k in before.keys() | checked.keys() if before.get(k) != checked.get(k)
        )
        event = AuditEvent(
            AuditAction.QUARANTINE_CORRECTED,
            "quarantine",
            str(entry_id),
            {"system": found["system"], "fields": changed[:100]},
        )
        record(conn, actor.label, [event])
        return store.get_entry(conn, entry_id) or found


def _format_of(conn: Connection, project: Project, found: dict[str, Any]) -> FileFormat:
    """The file format of the mapping that filed the entry: its system's customer
    mapping, or the linked-record mapping of the load that met it."""
    load_id = int(found["load_id"])
    linked = project.linked_of_version(store.load_versions(conn, [load_id]).get(load_id, ""))
    if linked is not None and linked.config.system == found["system"]:
        return linked.config.format
    return project.mapping(found["system"]).config.format


def _from_text(fmt: FileFormat, found: dict[str, Any], text: str) -> Any:
    _check_text(text, "the corrected text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CORRECTION_BYTES:
        raise TooLarge(f"the corrected text is over {MAX_CORRECTION_BYTES:,} bytes")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise InputRejected(f"the corrected text is not a valid JSON object: {exc}") from None
    columns = list(found["fields"] or {})
    if not columns:
        raise InputRejected(
            "the corrected text is not a JSON object, and the entry has no columns to read "
            "a CSV row with",
            hint="give the record as a JSON object of its fields",
        )
    delimiter = fmt.delimiter
    try:
        rows = list(csv.reader([stripped], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise InputRejected(f"cannot read the corrected text as a CSV row: {exc}") from None
    row = rows[0] if rows else []
    if len(row) != len(columns):
        raise InputRejected(
            f"the corrected row has {len(row)} fields; the entry's columns are {len(columns)}: "
            + ", ".join(columns[:30]),
            hint="give one value per column, in that order, or use --set COLUMN=VALUE",
        )
    return dict(zip(columns, row, strict=True))


def _no_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def check_correction(value: Any, max_field_bytes: int) -> dict[str, Any]:
    """A corrected record as it may be stored and replayed, or InputRejected saying what
    is wrong: an object of at most `MAX_CORRECTION_FIELDS` fields, `MAX_CORRECTION_BYTES`
    of JSON, nested at most `MAX_DEPTH` levels, no field over the mapping's
    max_field_bytes, and no NUL or invalid UTF-8 anywhere, keys included."""
    if not isinstance(value, dict):
        raise InputRejected("a corrected record must be an object of field names and values")
    if not value:
        raise InputRejected("the corrected record has no fields")
    if len(value) > MAX_CORRECTION_FIELDS:
        raise TooLarge(
            f"the corrected record has {len(value):,} fields; the limit is {MAX_CORRECTION_FIELDS}"
        )
    if deeper_than(value, MAX_DEPTH):
        raise InputRejected(f"the corrected record is nested more than {MAX_DEPTH} levels deep")
    _check_values(value, "")
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())
    except ValueError as exc:
        raise InputRejected(f"the corrected record is not valid JSON: {exc}") from None
    if size > MAX_CORRECTION_BYTES:
        raise TooLarge(
            f"the corrected record is {size:,} bytes of JSON; the limit is {MAX_CORRECTION_BYTES:,}"
        )
    too_large = list(size_reasons(value, max_field_bytes))
    if too_large:
        raise TooLarge(f"field {too_large[0].field!r}: {too_large[0].message}")
    return value


def _check_values(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise InputRejected(f"field names must be non-empty text (at {where or 'top'})")
            _check_text(key, f"the field name {key[:40]!r}")
            _check_values(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _check_values(item, f"{where}[{position}]")
    elif isinstance(value, str):
        _check_text(value, f"field {where!r}")
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise InputRejected(f"field {where!r}: {type(value).__name__} is not a JSON value")


def _check_text(value: str, what: str) -> None:
    found = UNSAFE_TEXT.search(value)
    if found is not None:
        kind = "a NUL character" if found.group() == "\x00" else "invalid UTF-8 (a lone surrogate)"
        raise InputRejected(
            f"{what} holds {kind} at character {found.start()}",
            hint="remove it; no store can hold it",
        )


# ---- discarding


def discard(engine: Engine, entry_id: int, reason: str, *, actor: Actor) -> dict[str, Any]:
    """Close an open entry without storing it; `reason` says why (audited)."""
    require(actor, Permission.QUARANTINE_MANAGE)
    note = reason.strip()
    if not note:
        raise InputRejected("say why the entry is discarded", hint="--reason '...'")
    if len(note) > MAX_NOTE_CHARS:
        raise TooLarge(f"the reason is over {MAX_NOTE_CHARS} characters")
    _check_text(note, "the reason")
    with writing(engine) as conn:
        found = _open_entry(conn, entry_id)
        store.close(conn, [entry_id], status="discarded", by=actor.label, note=note)
        event = AuditEvent(
            AuditAction.QUARANTINE_DISCARDED,
            "quarantine",
            str(entry_id),
            {"system": found["system"], "load_id": found["load_id"], "reason": note},
        )
        record(conn, actor.label, [event])
        return store.get_entry(conn, entry_id) or found


# ---- replaying


@dataclass
class ReplayReport:
    """One system's replay: the load it made, and what became of the entries."""

    system: str
    load_id: int
    kind: str | None = None  # of linked records; None: customer records
    entries: int = 0
    replayed: int = 0  # stored (or found stored already): closed as replayed
    still_failing: int = 0  # open, with their new reasons
    needs_correction: int = 0  # no fields to send (an unreadable row): open, untouched
    load: LoadReport | None = field(default=None, repr=False)
    failing: list[dict[str, Any]] = field(default_factory=list)  # id and reasons, first 100

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["load"] = None if self.load is None else self.load.counts()
        return data


def replay(
    engine: Engine,
    project: Project,
    *,
    actor: Actor,
    ids: Sequence[int] | None = None,
    system: str | None = None,
    reason: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ReplayReport]:
    """Replay the entries `ids`, or every open entry (of `system`, with `reason`), one
    load per system and mapping: a system's customer records by its mapping, each kind
    of its linked records by theirs (the mapping of the load that filed the entry).
    Entries named by id must exist and be open. `progress` is told how many entries
    each finished chunk held."""
    require(actor, Permission.QUARANTINE_MANAGE)
    if ids is not None:
        wanted = sorted(set(ids))
        if not wanted:
            raise InputRejected("name at least one entry to replay")
        with engine.connect() as conn:
            found = store.entries(conn, wanted)
            versions = store.load_versions(conn, [int(e["load_id"]) for e in found])
        missing = sorted(set(wanted) - {int(e["id"]) for e in found})
        if missing:
            raise NotFound(
                "no quarantine entry " + ", ".join(map(str, missing[:20])),
                hint="`accord quarantine list` shows the entries",
            )
        for item in found:
            _check_open(item)
        by_mapping: dict[tuple[str, str], list[int]] = {}
        for item in found:
            key = (item["system"], _mapping_name(versions[int(item["load_id"])]))
            by_mapping.setdefault(key, []).append(int(item["id"]))
        return [
            _replay_system(
                engine,
                project,
                name,
                actor,
                chunks=_chunked(chosen),
                progress=progress,
                mapping=mapping,
            )
            for (name, mapping), chosen in sorted(by_mapping.items())
        ]
    with engine.connect() as conn:  # a system with nothing open to replay makes no load
        groups = store.open_groups(conn, reason=reason)
    by_name: dict[tuple[str, str], list[str]] = {}
    for name, version in groups:
        if system in (None, name):
            by_name.setdefault((name, _mapping_name(version)), []).append(version)
    return [
        _replay_system(
            engine,
            project,
            name,
            actor,
            chunks=_open_chunks(engine, name, reason, chosen),
            progress=progress,
            mapping=mapping,
        )
        for (name, mapping), chosen in sorted(by_name.items())
    ]


def _mapping_name(version: str) -> str:
    """The mapping a version (`name@digest`) is of: a system's name for its customer
    mapping, a file's stem for a linked-record mapping."""
    return version.partition("@")[0]


def _chunked(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), REPLAY_CHUNK):
        yield ids[start : start + REPLAY_CHUNK]


def _open_chunks(
    engine: Engine, system: str, reason: str | None, versions: list[str]
) -> Iterator[list[int]]:
    """Open entries filed under these mapping versions a chunk at a time, oldest first;
    those still failing stay behind."""
    after = 0
    while True:
        with engine.connect() as conn:
            chunk = store.open_ids(
                conn,
                system=system,
                reason=reason,
                after=after,
                limit=REPLAY_CHUNK,
                mapping_versions=versions,
            )
        if not chunk:
            return
        yield chunk
        after = chunk[-1]


def _replay_system(
    engine: Engine,
    project: Project,
    system: str,
    actor: Actor,
    *,
    chunks: Iterator[list[int]],
    progress: Callable[[int], None] | None,
    mapping: str,
) -> ReplayReport:
    if system not in project.config.systems:
        raise InputRejected(
            f"quarantine entries of system {system!r}, which accord.yaml no longer has",
            hint="add the system back, or discard its entries",
        )
    linked = None if mapping == system else project.linked.get(mapping)
    if mapping != system and linked is None:
        raise InputRejected(
            f"quarantine entries of system {system!r} filed by mapping {mapping!r}, which "
            "the project no longer has",
            hint=f"add mappings/{mapping}.yaml back, or discard its entries",
        )
    version = project.mapping(system).version if linked is None else linked.version
    with recorded_load(
        engine,
        project,
        system,
        channel="replay",
        source_name="quarantine",
        actor=actor.label,
        mapping_version=version,
    ) as load_report:
        report = ReplayReport(system, load_report.load_id, load=load_report)
        if linked is not None:
            report.kind = linked.config.kind
        outcomes: list[dict[str, Any]] = []  # each chunk's, in its order
        batcher: Batcher | LinkedBatcher
        if linked is None:
            batcher = Batcher(
                engine,
                RecordMapper(project.mapping(system), project.config.systems[system]),
                load_report,
                project.config.entity,
                outcomes,
                max_skew=project.config.survivorship.max_clock_skew,
            )
        else:
            batcher = LinkedBatcher(engine, LinkedMapper(linked), load_report, outcomes)
        for chunk in chunks:
            with writing(engine) as conn:
                _replay_chunk(conn, batcher, outcomes, chunk, report=report, actor=actor)
            if progress is not None:
                progress(len(chunk))
    return report


def _replay_chunk(
    conn: Connection,
    batcher: Batcher | LinkedBatcher,
    outcomes: list[dict[str, Any]],
    ids: list[int],
    *,
    report: ReplayReport,
    actor: Actor,
) -> None:
    """Send one chunk of entries through the batcher (which notes into `outcomes`) and
    close or update each, in the caller's transaction. Entries closed meanwhile
    (another replay) are left alone."""
    sending: list[dict[str, Any]] = []
    raws: list[RawRecord] = []
    for item in store.entries(conn, ids, lock=True):
        if item["status"] != "open":
            continue
        report.entries += 1
        fields = replayable(item)
        if fields is None:
            report.needs_correction += 1
            continue
        sending.append(item)
        # the entry's own raw text: should the record fail again, quarantine finds it
        # open already and does not file it a second time
        raws.append(RawRecord(f"quarantine {item['id']} ({item['location']})", fields, item["raw"]))
    if not raws:
        return
    outcomes.clear()
    batcher.write(conn, raws)
    stored: list[int] = []
    failing: list[tuple[int, list[dict[str, Any]]]] = []
    events: list[AuditEvent] = []
    for item, outcome in zip(sending, outcomes, strict=True):
        entry_id = int(item["id"])
        if outcome["status"] == "rejected":
            failing.append((entry_id, outcome["reasons"]))
            codes = [r["code"] for r in outcome["reasons"]]
            events.append(
                AuditEvent(
                    AuditAction.QUARANTINE_RETRIED,
                    "quarantine",
                    str(entry_id),
                    {"system": item["system"], "load_id": report.load_id, "reasons": codes},
                )
            )
            if len(report.failing) < 100:
                report.failing.append({"id": entry_id, "reasons": outcome["reasons"]})
        else:
            stored.append(entry_id)
            events.append(
                AuditEvent(
                    AuditAction.QUARANTINE_REPLAYED,
                    "quarantine",
                    str(entry_id),
                    {
                        "system": item["system"],
                        "load_id": report.load_id,
                        "source_id": outcome.get("source_id"),
                        "outcome": outcome["status"],
                        "corrected": item["correction"] is not None,
                    },
                )
            )
    store.close(conn, stored, status="replayed", by=actor.label, replay_load_id=report.load_id)
    store.set_reasons(conn, failing)
    report.replayed += len(stored)
    report.still_failing += len(failing)
    record(conn, actor.label, events)


# ---- where a replayed record went


def destination(
    conn: Connection, project: Project, actor: Actor, found: dict[str, Any]
) -> dict[str, str | None] | None:
    """Where a replayed entry's record went: `{"source_id", "golden_id"}`, the golden
    customer None while the record waits for matching. None for an entry not replayed,
    one of linked records (orders, invoices: they hold no golden id of their own), or
    one whose system or mapping the project no longer has."""
    require(actor, Permission.QUARANTINE_MANAGE)
    system = found["system"]
    if found["status"] != "replayed" or system not in project.config.systems:
        return None
    load_id = int(found["replay_load_id"])
    if _mapping_name(store.load_versions(conn, [load_id]).get(load_id, "")) != system:
        return None
    fields = replayable(found)
    mapper = RecordMapper(project.mapping(system), project.config.systems[system])
    source_id = None if fields is None else mapper.source_id(fields)
    if source_id is None:
        return None
    link = crosswalk_of(conn, system, source_id)
    return {"source_id": source_id, "golden_id": None if link is None else link["golden_id"]}
