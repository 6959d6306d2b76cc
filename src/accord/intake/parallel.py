"""Mapping a large file's records on other processes while this one reads and stores.

Standardizing, validating and mapping records is most of a file load's work, and it needs
nothing but the mapping, so it can run beside the store: worker processes map batches
while this process reads the file and stores the batches mapped, in file order. A load
is the same with or without them (the same records, versions, quarantine entries and
counts); only its speed differs.

The workers are new interpreters (`spawn`: safe beside threads, such as a server's or a
scheduler's), each handed the mapping and the system's settings, from which it builds
its own `RecordMapper`. At most `ahead` batches per worker are in flight, so a file of
any size is read at the pace it is stored. A worker that dies (killed, out of memory)
fails the load with a message saying so; what was stored stays stored, and loading the
file again picks up the rest, as after any failed load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, NamedTuple

from accord.config.loader import Mapping
from accord.config.models import SystemConfig
from accord.digest import digest as content_digest
from accord.errors import AccordError
from accord.hlc import millis
from accord.intake.mapping import MappedRecord, RecordMapper, Rejected
from accord.intake.readers import RawRecord
from accord.intake.reasons import Reason
from accord.runtime.heap import freeze_once
from accord.runtime.processes import Beside, spawned
from accord.settings import Settings
from accord.store.engine import JSONText


class Prepared(NamedTuple):
    """A mapped record made ready to store, by whichever process mapped it: its documents
    written as JSON text already, so that the process storing a load (the bottleneck of a
    large one, `benchmarks/README.md`) only hands them to the database."""

    source_id: str
    digest: str  # the content hash of the source fields (`accord.digest`)
    issues: tuple[Reason, ...]  # flagged values, kept out of `data`
    payload: JSONText  # the source fields
    data: JSONText  # the canonical record
    issues_json: JSONText  # `issues`, as stored beside it
    changed_ms: int | None  # when the source changed it (`source_updated_at`), in ms


# What became of each record of a batch, in its order: mapped and made ready to store;
# rejected; or None for a record that could not be read.
Mapped = list[Prepared | Rejected | None]

_NO_ISSUES = JSONText("[]")

PARALLEL_FROM = 16 * 1024 * 1024  # bytes: smaller files are mapped by the storing process
MAX_WORKERS = 8


def map_records(mapper: RecordMapper, fields: Iterable[dict[str, Any] | None]) -> Mapped:
    """Map each record's fields (None: a record that could not be read)."""
    mapped: Mapped = []
    for one in fields:
        if one is None:
            mapped.append(None)
            continue
        result = mapper.map(one)
        mapped.append(prepare(result, one) if isinstance(result, MappedRecord) else result)
    return mapped


def prepare(result: MappedRecord, fields: dict[str, Any]) -> Prepared:
    """A record mapped from `fields`, made ready to store."""
    issues = result.issues
    return Prepared(
        result.source_id,
        content_digest(fields),
        issues,
        JSONText.of(fields),
        JSONText.of(result.data),
        JSONText.of([i.as_dict() for i in issues]) if issues else _NO_ISSUES,
        source_ms(result.data.get("source_updated_at")),
    )


def source_ms(value: Any) -> int | None:
    """A canonical `source_updated_at` (ISO text) in milliseconds; None if absent."""
    if not value:
        return None
    try:
        return millis(datetime.fromisoformat(str(value)))
    except ValueError:
        return None


def workers_for(size: int, wanted: int | None) -> int:
    """How many processes map the records of a load of `size` bytes beside the one that
    stores them: `wanted` when given, else ACCORD_LOAD_WORKERS when set (0: none, the
    storing process maps), else one per CPU core besides the storing process's (at least
    one) for a file of PARALLEL_FROM bytes or more, and none for a smaller one.

    Measured on 2 cores (benchmarks/README.md): loading 1,000,000 records, files of 18 to
    57 MB, took 304 s mapped in the storing process, 246 s with one mapping process and
    223 s with two, but each mapping process holds about 110 MiB, and with two the three
    together reach 500 MiB; a 15 MB file of 100,000 records gained nothing, hence the
    threshold."""
    if wanted is None:
        wanted = Settings().load_workers
    if wanted is None:
        cores = os.cpu_count() or 1
        return 0 if size < PARALLEL_FROM else max(1, min(cores - 1, MAX_WORKERS))
    return max(0, min(wanted, MAX_WORKERS))


class WorkerLost(AccordError):
    """A mapping process died in the middle of a load."""


class MappingPool(Beside):
    """`workers` processes mapping one system's records; use as a context manager."""

    def __init__(
        self, mapping: Mapping, system: SystemConfig, workers: int, *, ahead: int = 2
    ) -> None:
        self.workers = workers
        self.ahead = ahead
        super().__init__(spawned(workers, _start, (mapping, system)))

    def map(self, batches: Iterable[list[RawRecord]]) -> Iterator[tuple[list[RawRecord], Mapped]]:
        """Each batch with its mapping, in the order given."""
        try:
            yield from self.in_order(
                batches,
                lambda batch: self._executor.submit(_map, [raw.fields for raw in batch]),
                self.workers * self.ahead,
            )
        except BrokenProcessPool as exc:
            raise WorkerLost(
                "a process mapping records stopped in the middle of the load "
                "(killed, or out of memory); what was stored before it stays stored",
                hint="load the file again: records already stored are skipped as "
                "unchanged; set ACCORD_LOAD_WORKERS=0 to map in one process",
            ) from exc


_mapper: RecordMapper | None = None  # in a worker process: the mapper it was started with


def _start(mapping: Mapping, system: SystemConfig) -> None:
    global _mapper  # noqa: PLW0603  (one mapper per worker process, built once)
    _mapper = RecordMapper(mapping, system)
    freeze_once()  # the process's start, out of the full collections (runtime/heap.py)


def _map(fields: list[dict[str, Any] | None]) -> Mapped:
    if _mapper is None:
        raise RuntimeError("a mapping worker was not started with a mapping")
    return map_records(_mapper, fields)
