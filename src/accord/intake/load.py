"""Loading a file: read, map, validate, and store or quarantine, in batches.

Idempotent: a record whose content is unchanged since its current version creates
nothing (unless the mapping changed, which adds a re-mapped canonical record); a changed
record becomes a new version. Each batch commits on its own, so a load that dies part of
the way keeps what it stored, and running it again picks up the rest.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Table

from accord.config import versions
from accord.config.loader import Project
from accord.config.models import FileFormat
from accord.errors import InputRejected
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.intake.mapping import RecordMapper, Rejected
from accord.intake.parallel import Mapped, MappingPool, Prepared, map_records, workers_for
from accord.intake.readers import RawRecord, SourceFile
from accord.intake.reasons import Reason
from accord.runtime.heap import freeze_once
from accord.store import records as store
from accord.store import tables
from accord.store.clock import DEFAULT_MAX_SKEW
from accord.store.dialect import refresh_statistics
from accord.store.engine import writing

Progress = Callable[[int, int], None]  # (bytes read, total bytes)
# the tables a load writes a row or more per record to, whose planner statistics it brings
# up to date after a large load (`dialect.refresh_statistics`)
WRITTEN = (
    tables.source_record,
    tables.canonical_record,
    tables.record_head,
    tables.work_item,
    tables.quarantine,
)


@dataclass
class LoadReport:
    load_id: int
    system: str
    source_name: str
    read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    remapped: int = 0
    repeated_in_file: int = 0
    quarantined: int = 0
    already_quarantined: int = 0  # of those, open in quarantine from an earlier load
    flagged: int = 0
    unplaced: int = 0  # rows a poll cannot read: their watermark or key is NULL
    seconds: float = 0.0
    status: str = "done"
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("load_id", "system", "source_name", "status"):
            data.pop(key)
        return data


def load_file(
    engine: Engine,
    project: Project,
    system: str,
    path: Path,
    *,
    actor: str,
    batch_size: int = 1000,
    progress: Progress | None = None,
    channel: str = "file",
    on_start: Callable[[LoadReport], None] | None = None,
    workers: int | None = None,
) -> LoadReport:
    """Load one file for `system`. Raises InputRejected when the file as a whole is unusable.

    `channel` is stored with the load (`file` for `accord load`, `drop` for a watched
    folder). `on_start` is handed the report once the load is recorded; it is filled in
    batch by batch, so a caller whose load raised can still tell how far it got.
    `workers`: processes that map records while this one stores them (0: none; by
    default ACCORD_LOAD_WORKERS, else one per core but one for a large file:
    `intake/parallel.py`)."""
    mapping = project.mapping(system)
    system_config = project.config.systems[system]
    mapper = RecordMapper(mapping, system_config)
    freeze_once()  # what the process holds by now, out of the full collections (heap.py)
    source, all_records = open_source(path, mapping.config.format, mapper.source_columns())
    processes = workers_for(source.size, workers)
    with (
        recorded_load(
            engine, project, system, channel=channel, source_name=path.name, actor=actor
        ) as report,
        contextlib.ExitStack() as stack,
    ):
        batcher = Batcher(
            engine,
            mapper,
            report,
            project.config.entity,
            max_skew=project.config.survivorship.max_clock_skew,
        )
        if on_start is not None:
            on_start(report)
        batches = chunks(all_records, batch_size)
        mapped_batches: Iterator[tuple[list[RawRecord], Mapped | None]]
        if processes > 0:
            pool = stack.enter_context(MappingPool(mapping, system_config, processes))
            mapped_batches = pool.map(batches)
        else:
            mapped_batches = ((batch, None) for batch in batches)
        for batch, mapped in mapped_batches:
            batcher.add(batch, mapped)
            if progress is not None:
                progress(source.bytes_read, source.size)
    return report


def begin_load(
    conn: Connection,
    project: Project,
    system: str,
    *,
    channel: str,
    source_name: str,
    actor: str,
    mapping_version: str | None = None,
) -> int:
    """Record the start of a load of `channel` (under the project version it runs with)
    in the caller's transaction; returns its id. `mapping_version`: the mapping it loads
    with, by default the system's customer mapping (a linked-record load names its own)."""
    versions.apply(conn, project, actor)
    return store.start_load(
        conn,
        system=system,
        channel=channel,
        source_name=source_name,
        mapping_version=mapping_version or project.mapping(system).version,
        project_digest=project.digest,
        actor=actor,
    )


def end_load(conn: Connection, report: LoadReport, *, channel: str, actor: str) -> None:
    """Record how a load ended, with its counts, and audit it, in the caller's
    transaction."""
    store.finish_load(conn, report.load_id, report.status, report.counts())
    details = {
        "system": report.system,
        "channel": channel,
        "source": report.source_name,
        "status": report.status,
    } | {k: v for k, v in report.counts().items() if k != "seconds"}
    event = AuditEvent(AuditAction.LOAD_COMPLETED, "load", str(report.load_id), details)
    record(conn, actor, [event])


@contextmanager
def recorded_load(
    engine: Engine,
    project: Project,
    system: str,
    *,
    channel: str,
    source_name: str,
    actor: str,
    on_end: Callable[[Connection], None] | None = None,
    mapping_version: str | None = None,
    writes: Sequence[Table] = WRITTEN,
) -> Iterator[LoadReport]:
    """A load stored in several transactions (a file, a poll, a replay): recorded as
    started, then, however the block ends, as done or failed (whatever stopped it, it
    did not finish), timed and audited; `on_end` runs in that last transaction.
    `mapping_version`: as `begin_load`'s. `writes`: the tables the load writes a row or
    more a record to, whose planner statistics are brought up to date after it."""
    started = time.perf_counter()
    with writing(engine) as conn:
        load_id = begin_load(
            conn,
            project,
            system,
            channel=channel,
            source_name=source_name,
            actor=actor,
            mapping_version=mapping_version,
        )
    report = LoadReport(load_id, system, source_name)
    try:
        yield report
    except BaseException:
        report.status = "failed"
        raise
    finally:
        report.seconds = time.perf_counter() - started
        with writing(engine) as conn:
            end_load(conn, report, channel=channel, actor=actor)
            if on_end is not None:
                on_end(conn)
    stored = report.new + report.changed + report.remapped + report.quarantined
    refresh_statistics(engine, writes, stored)


Seen = dict[str, tuple[str, str]]  # source id -> (content hash, location) in one input


class _Identified(Protocol):
    @property
    def source_id(self) -> str: ...


_M = TypeVar("_M", bound=_Identified)


def sort_mapped(
    batch: list[RawRecord],
    results: Sequence[tuple[_M, str] | Rejected | None],
    *,
    seen: Seen,
    report: LoadReport,
    outcome: list[dict[str, Any]],
    quarantine: Callable[
        [RawRecord, str | None, tuple[Reason, ...], dict[str, Any]], store.QuarantineEntry
    ],
) -> tuple[list[store.QuarantineEntry], list[tuple[int, RawRecord, _M, str]]]:
    """Sort a batch's records, each mapped to (what it became, its content digest), or
    rejected, or None when it could not be read: those that could not be read, mapped or
    validated, or repeat a source id of the input with other content, go to quarantine
    (`quarantine` files the entry); a repeat with the same content is counted and left;
    the rest are kept, with their place in the batch. Counts what it read."""
    quarantined: list[store.QuarantineEntry] = []
    kept: list[tuple[int, RawRecord, _M, str]] = []
    for position, (raw, found) in enumerate(zip(batch, results, strict=True)):
        report.read += 1
        if raw.fields is None or found is None:
            quarantined.append(quarantine(raw, None, raw.reasons, outcome[position]))
            continue
        if isinstance(found, Rejected):
            quarantined.append(quarantine(raw, found.source_id, found.reasons, outcome[position]))
            continue
        result, digest = found
        outcome[position]["source_id"] = result.source_id
        repeat = repeated(seen, result.source_id, digest, raw.location)
        if repeat == "same":
            report.repeated_in_file += 1
            outcome[position]["status"] = "duplicate"
        elif repeat is not None:
            quarantined.append(quarantine(raw, result.source_id, (repeat,), outcome[position]))
        else:
            kept.append((position, raw, result, digest))
    return quarantined, kept


def repeated(
    seen: Seen, source_id: str, digest: str, location: str, *, kept: str = "was kept"
) -> Reason | Literal["same"] | None:
    """Whether a record repeats a source id seen earlier in the same input: "same" for
    the same content (nothing to store), a reason to quarantine it for other content
    (the first one is kept), or None for the first, which `seen` then remembers."""
    earlier = seen.get(source_id)
    if earlier is None:
        seen[source_id] = (digest, location)
        return None
    if earlier[0] == digest:
        return "same"
    return Reason(
        "source_id.repeated",
        f"source id {source_id!r} appears again with other content "
        f"(first at {earlier[1]}); the first one {kept}",
    )


def in_order(records: list[RawRecord], mapper: RecordMapper) -> list[list[RawRecord]]:
    """The records in rounds that each hold a source id once, so that a record changed
    several times in one batch of changes is stored as versions in their order. Records
    that cannot be read go in the first round."""
    rounds: list[list[RawRecord]] = []
    seen: dict[str, int] = {}
    for raw in records:
        source_id = None if raw.fields is None else mapper.source_id(raw.fields)
        turn = 0
        if source_id is not None:
            turn = seen.get(source_id, 0)
            seen[source_id] = turn + 1
        if turn == len(rounds):
            rounds.append([])
        rounds[turn].append(raw)
    return rounds


def open_source(
    path: Path, fmt: FileFormat, columns: tuple[str, ...]
) -> tuple[SourceFile, Iterator[RawRecord]]:
    """The file and its records. The first is read at once, so a file unusable as a whole
    (no header, the wrong delimiter) raises InputRejected before any write."""
    try:
        source = SourceFile(path, fmt, columns)
    except OSError as exc:
        raise InputRejected(f"cannot read {path}: {exc.strerror}") from exc
    records = iter(source)
    first = next(records, None)
    return source, chain([first] if first is not None else [], records)


def chunks(items: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    """`items` in lists of `size` (the last shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Batcher:
    """Classifies and stores one batch at a time; remembers ids seen earlier in the input.
    With `outcomes`, notes what became of each record, in input order (the push API's
    answer)."""

    def __init__(
        self,
        engine: Engine,
        mapper: RecordMapper,
        report: LoadReport,
        entity_type: str,
        outcomes: list[dict[str, Any]] | None = None,
        *,
        changes: bool = False,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        if changes and outcomes is not None:
            raise ValueError("outcomes are kept in input order, which changes do not keep")
        self.engine = engine
        self.mapper = mapper
        self.report = report
        self.entity_type = entity_type
        self.seen: Seen = {}
        self.outcomes = outcomes
        self.changes = changes
        self.max_skew = max_skew  # of the sources' clocks (survivorship.max_clock_skew)

    def add(self, batch: list[RawRecord], mapped: Mapped | None = None) -> None:
        """Store one batch in a transaction of its own; `mapped`: its records mapped
        already (`intake/parallel.py`), else they are mapped here."""
        with writing(self.engine) as conn:
            self.write(conn, batch, mapped)

    def write(self, conn: Connection, batch: list[RawRecord], mapped: Mapped | None = None) -> None:
        """Store one batch in the caller's transaction.

        A file is one snapshot: a source id repeated in it with other content is
        quarantined (the first one is kept), across all its batches. A batcher of
        `changes` (a stream, a poll) takes each batch as changes in order instead: a
        source id repeated in it is stored as successive versions, and nothing is
        remembered from one batch to the next (a record read again later changed
        since)."""
        if not self.changes:
            self._write(conn, batch, mapped)
            return
        if mapped is not None:
            raise ValueError("a batch of changes is mapped round by round, here")
        for turn in in_order(batch, self.mapper):
            self.seen.clear()
            self._write(conn, turn)

    def _write(
        self, conn: Connection, batch: list[RawRecord], mapped_before: Mapped | None = None
    ) -> None:
        report = self.report
        outcome: list[dict[str, Any]] = [{"record": raw.location} for raw in batch]
        if mapped_before is None:
            mapped_before = map_records(self.mapper, (raw.fields for raw in batch))
        quarantined, mapped = self._classify(batch, mapped_before, outcome)

        current = store.heads(conn, self.report.system, [m.source_id for _, _, m, _ in mapped])
        # numbered after every stored version, current or withdrawn (`store.latest_versions`)
        latest = store.latest_versions(
            conn,
            report.system,
            [
                m.source_id
                for _, _, m, digest in mapped
                if m.source_id not in current or current[m.source_id].content_hash != digest
            ],
        )
        new_versions: list[store.NewVersion] = []
        remaps: list[store.Remap] = []
        for position, _, result, digest in mapped:
            if result.issues:
                report.flagged += 1
                outcome[position]["flags"] = [i.as_dict() for i in result.issues]
            head = current.get(result.source_id)
            if head is not None and head.content_hash == digest:
                outcome[position]["status"] = "duplicate"
                if head.mapping_version == self.mapper.version:
                    report.unchanged += 1
                    continue
                report.remapped += 1
                remaps.append(
                    store.Remap(
                        result.source_id,
                        head.source_record_id,
                        self.entity_type,
                        result.data,
                        result.issues_json,
                    )
                )
                continue
            if head is None:
                report.new += 1
            else:
                report.changed += 1
            version = max(0 if head is None else head.version, latest.get(result.source_id, 0)) + 1
            outcome[position] |= {"status": "accepted", "version": version}
            new_versions.append(
                store.NewVersion(
                    result.source_id,
                    version,
                    digest,
                    result.payload,
                    self.entity_type,
                    result.data,
                    result.issues_json,
                    result.changed_ms,
                )
            )
        store.store_versions(
            conn,
            load_id=report.load_id,
            system=report.system,
            mapping_version=self.mapper.version,
            versions=new_versions,
            max_skew=self.max_skew,
        )
        store.store_remaps(
            conn, system=report.system, mapping_version=self.mapper.version, remaps=remaps
        )
        filed = store.quarantine_records(
            conn, load_id=report.load_id, system=report.system, entries=quarantined
        )
        report.already_quarantined += len(quarantined) - filed
        if self.outcomes is not None:
            self.outcomes.extend(outcome)

    def _classify(
        self, batch: list[RawRecord], results: Mapped, outcome: list[dict[str, Any]]
    ) -> tuple[list[store.QuarantineEntry], list[tuple[int, RawRecord, Prepared, str]]]:
        """Sort the mapped records (`sort_mapped`)."""
        return sort_mapped(
            batch,
            [(r, r.digest) if isinstance(r, Prepared) else r for r in results],
            seen=self.seen,
            report=self.report,
            outcome=outcome,
            quarantine=self._quarantine,
        )

    def _quarantine(
        self,
        raw: RawRecord,
        source_id: str | None,
        reasons: tuple[Reason, ...],
        outcome: dict[str, Any],
    ) -> store.QuarantineEntry:
        outcome |= {"status": "rejected", "reasons": [r.as_dict() for r in reasons]}
        if source_id is not None:
            outcome["source_id"] = source_id
        self.report.quarantined += 1
        for reason in reasons:
            counts = self.report.quarantine_reasons
            counts[reason.code] = counts.get(reason.code, 0) + 1
        return store.QuarantineEntry(
            source_id, raw.location, raw.raw, [r.as_dict() for r in reasons], raw.fields
        )
