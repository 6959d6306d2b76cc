"""Loading linked records: read, map, and store or quarantine, a batch at a time.

The same way in as customer records where it fits: the readers (CSV, JSON Lines, gzip,
row problems as reasons), the load's life cycle and audit (`intake.load.recorded_load`),
a source id repeated in one file (`intake.load.sort_mapped`), and quarantine with reasons
(replayed through this module by `intake.quarantine`). What differs is the store: a
linked record is one row per (system, kind, source id), replaced when its content or
its mapping changes and left alone when neither did, with no versions and no matching.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from accord.config.loader import LinkedMapping, Project
from accord.digest import digest as content_digest
from accord.intake.load import (
    LoadReport,
    Progress,
    Seen,
    chunks,
    open_source,
    recorded_load,
    sort_mapped,
)
from accord.intake.mapping import Rejected
from accord.intake.readers import RawRecord
from accord.intake.reasons import Reason
from accord.linked.mapping import LinkedMapper, LinkedValues
from accord.standardize.dates import timestamp
from accord.store import linked as store
from accord.store.engine import writing
from accord.store.records import QuarantineEntry, quarantine_records
from accord.store.tables import linked_record, quarantine
from accord.store.types import utcnow


def load_linked_file(
    engine: Engine,
    project: Project,
    mapping: LinkedMapping,
    path: Path,
    *,
    actor: str,
    batch_size: int = 1000,
    progress: Progress | None = None,
    channel: str = "file",
    on_start: Callable[[LoadReport], None] | None = None,
) -> LoadReport:
    """Load one file of linked records with `mapping`. Raises InputRejected when the
    file as a whole is unusable (before anything is written)."""
    mapper = LinkedMapper(mapping)
    source, records = open_source(path, mapping.config.format, mapper.source_columns())
    with recorded_load(
        engine,
        project,
        mapping.config.system,
        channel=channel,
        source_name=path.name,
        actor=actor,
        mapping_version=mapping.version,
        writes=(linked_record, quarantine),
    ) as report:
        if on_start is not None:
            on_start(report)
        batcher = LinkedBatcher(engine, mapper, report)
        for batch in chunks(records, batch_size):
            batcher.add(batch)
            if progress is not None:
                progress(source.bytes_read, source.size)
    return report


class LinkedBatcher:
    """Classifies and stores one batch of linked records at a time; remembers the ids
    seen earlier in the input (a file is one snapshot: an id repeated with other content
    is quarantined, the first kept). With `outcomes`, notes what became of each record
    in input order, as `intake.load.Batcher` does (quarantine replay reads them)."""

    def __init__(
        self,
        engine: Engine,
        mapper: LinkedMapper,
        report: LoadReport,
        outcomes: list[dict[str, Any]] | None = None,
    ) -> None:
        self.engine = engine
        self.mapper = mapper
        self.report = report
        self.outcomes = outcomes
        self.seen: Seen = {}

    def add(self, batch: list[RawRecord]) -> None:
        """Store one batch in a transaction of its own."""
        with writing(self.engine) as conn:
            self.write(conn, batch)

    def write(self, conn: Connection, batch: list[RawRecord]) -> None:
        """Store one batch in the caller's transaction: one lookup of what is stored,
        one statement of inserts and replacements, one of quarantine entries."""
        report, mapper = self.report, self.mapper
        outcome: list[dict[str, Any]] = [{"record": raw.location} for raw in batch]
        results: list[tuple[LinkedValues, str] | Rejected | None] = []
        for raw in batch:
            if raw.fields is None:  # could not be read
                results.append(None)
                continue
            mapped = mapper.map(raw.fields)
            if isinstance(mapped, LinkedValues):
                results.append((mapped, content_digest(raw.fields)))
            else:
                results.append(mapped)
        quarantined, kept = sort_mapped(
            batch,
            results,
            seen=self.seen,
            report=report,
            outcome=outcome,
            quarantine=self._quarantine,
        )
        known = store.stored(conn, mapper.system, mapper.kind, [v.source_id for _, _, v, _ in kept])
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for position, raw, values, digest in kept:
            before = known.get(values.source_id)
            report.flagged += bool(values.issues)
            if values.issues:
                outcome[position]["flags"] = [i.as_dict() for i in values.issues]
            if before == (digest, mapper.version):
                report.unchanged += 1
                outcome[position]["status"] = "duplicate"
                continue
            if before is None:
                report.new += 1
            elif before[0] == digest:
                report.remapped += 1  # the same record read by another mapping version
            else:
                report.changed += 1
            outcome[position]["status"] = "accepted"
            rows.append(self._row(raw, values, digest, now))
        store.store(conn, rows)
        filed = quarantine_records(
            conn, load_id=report.load_id, system=mapper.system, entries=quarantined
        )
        report.already_quarantined += len(quarantined) - filed
        if self.outcomes is not None:
            self.outcomes.extend(outcome)

    def _row(self, raw: RawRecord, values: LinkedValues, digest: str, now: Any) -> dict[str, Any]:
        data = values.data
        occurred = data.get("occurred_at")
        return {
            "system": self.mapper.system,
            "kind": self.mapper.kind,
            "source_id": values.source_id,
            "customer_system": self.mapper.customer_system,
            "customer_source_id": values.customer_source_id,
            "occurred_at": None if occurred is None else timestamp(occurred),
            "amount": data.get("amount"),
            "currency": data.get("currency"),
            "status": data.get("status"),
            "title": data.get("title"),
            "issues": [i.as_dict() for i in values.issues],
            "payload": raw.fields,
            "content_hash": digest,
            "mapping_version": self.mapper.version,
            "load_id": self.report.load_id,
            "first_seen_at": now,
            "updated_at": now,
        }

    def _quarantine(
        self,
        raw: RawRecord,
        source_id: str | None,
        reasons: tuple[Reason, ...],
        outcome: dict[str, Any],
    ) -> QuarantineEntry:
        outcome |= {"status": "rejected", "reasons": [r.as_dict() for r in reasons]}
        if source_id is not None:
            outcome["source_id"] = source_id
        self.report.quarantined += 1
        counts = self.report.quarantine_reasons
        for reason in reasons:
            counts[reason.code] = counts.get(reason.code, 0) + 1
        return QuarantineEntry(
            source_id, raw.location, raw.raw, [r.as_dict() for r in reasons], raw.fields
        )
