"""Work of a full resolve done on another process beside it: its records read (their
match features worked out from their JSON text) while it fetches more, golden content
built ahead of its writes, and the match index's keys worked out while it matches.

A full resolve's golden stage builds each customer's golden record (reading its
records' data, survivorship, the fingerprint, the documents' JSON) and writes it, with
its crosswalk rows, search entry, outbox change and audit event. The building needs
nothing from the store, so a process of its own does it a batch of customers ahead,
while this one writes: at a million records the stage took 125 s in one process
(`benchmarks/README.md`). A resolve is the same either way; only its speed differs.

The process is a new interpreter (`spawn`: safe beside threads), handed the project's
survivorship settings; it receives each batch's member records as stored (their data as
JSON text) with the stewards' pins, and gives back each customer's content with its
documents as JSON text already (`JSONText`), which the store hands to the database as
it is. At most `ahead` batches are in flight. A process that dies (killed, out of
memory) fails the resolve, whose transaction then writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar

from accord.config.models import SurvivorshipConfig, SystemConfig
from accord.errors import AccordError
from accord.golden.content import golden_content, member_of
from accord.golden.relationships import stating
from accord.golden.survivorship import Pin, Survivorship
from accord.match.features import features_of
from accord.match.index import IndexKeys, IndexPlan, index_keys, joined
from accord.match.learned import record_columns
from accord.runtime.heap import freeze_once
from accord.runtime.processes import Beside, R, T, spawned
from accord.store.engine import JSONText, json_value
from accord.store.records import CurrentDocument

# clusters to build (by position in the resolve's list) with their stewards' pins
Batch = Sequence[tuple[int, Mapping[str, Pin]]]
# what a batch's customers' members are, as stored, with their pins
_Work = list[tuple[list[CurrentDocument], Mapping[str, Pin]]]
# the documents of golden content that go to the store as JSON text
WRITTEN = ("data", "lineage", "sources")


class ContentLost(AccordError):
    """The process building golden content stopped in the middle of a resolve."""


class ReadingLost(AccordError):
    """The process reading records stopped in the middle of a resolve."""


# what a full resolve keeps of a record it reads: its match features, its kind, and
# what it may state of relationships (`golden.relationships.stating`)
Reading = tuple[dict[str, str], str | None, dict[str, Any] | None]


def read_documents(documents: Sequence[str]) -> list[Reading]:
    """What a full resolve keeps of each of these records, from its canonical data as
    JSON text: here, or on the process of `ReadPool`."""
    read = []
    for document in documents:
        data = json_value(document)
        read.append((features_of(data), data.get("kind"), stating(data)))
    return read


class _ResolvePool(Beside):
    """One process beside a full resolve, handed its work a batch at a time and giving
    the results back in order. If it dies, the resolve stops with `lost` (saying the
    process was `doing` its work, and that 0 workers has the resolve `do` it itself)
    before anything of it is written."""

    lost: ClassVar[type[AccordError]]
    doing: ClassVar[str]  # "reading records"
    do: ClassVar[str]  # "read records"

    def _in_order(
        self, batches: Iterable[T], submit: Callable[[T], Future[R]], ahead: int
    ) -> Iterator[tuple[T, R]]:
        try:
            yield from self.in_order(batches, submit, ahead)
        except BrokenProcessPool as exc:
            raise self.lost(
                f"the process {self.doing} stopped in the middle of the resolve (killed, "
                "or out of memory); nothing of this resolve was written",
                hint=f"run the resolve again; set ACCORD_RESOLVE_WORKERS=0 to {self.do} "
                "in the resolving process",
            ) from exc


class ReadPool(_ResolvePool):
    """One process reading records (`read_documents`) a page at a time, while this one
    fetches the next pages from the store: parsing the JSON and working out the match
    features take about as long as fetching, and a full resolve's reading is otherwise
    on one core. Use as a context manager."""

    lost, doing, do = ReadingLost, "reading records", "read records"

    def __init__(self, *, ahead: int = 3) -> None:
        self.ahead = ahead
        super().__init__(spawned(1, freeze_once))

    def read(
        self, pages: Iterable[Sequence[CurrentDocument]]
    ) -> Iterator[tuple[Sequence[CurrentDocument], list[Reading]]]:
        """Each page of records with what is kept of them, in the order given."""
        return self._in_order(pages, self._submit, self.ahead)

    def _submit(self, page: Sequence[CurrentDocument]) -> Future[list[Reading]]:
        return self._executor.submit(read_documents, [d.document for d in page])


class ContentPool(_ResolvePool):
    """One process building golden content for the clusters of `groups` (positions in
    `stored`); use as a context manager."""

    lost, doing, do = ContentLost, "building golden records", "build golden records"

    def __init__(
        self,
        survivorship: SurvivorshipConfig,
        systems: dict[str, SystemConfig],
        stored: Sequence[CurrentDocument],
        groups: Sequence[Sequence[int]],
        *,
        ahead: int = 3,
    ) -> None:
        self.stored = stored
        self.groups = groups
        self.ahead = ahead
        super().__init__(spawned(1, _start, (survivorship, systems)))

    def build(self, batches: Iterable[Batch]) -> Iterator[tuple[Batch, list[dict[str, Any]]]]:
        """Each batch with its customers' golden content, in the order given
        (`golden.resolve.write_clusters` asks for it so)."""
        return self._in_order(batches, self._submit, self.ahead)

    def _submit(self, batch: Batch) -> Future[list[dict[str, Any]]]:
        work = [([self.stored[j] for j in self.groups[i]], pins) for i, pins in batch]
        return self._executor.submit(_build, work)


_survivorship: Survivorship | None = None  # in the worker: built once, from its settings


def _start(config: SurvivorshipConfig, systems: dict[str, SystemConfig]) -> None:
    global _survivorship  # noqa: PLW0603  (one per worker process, built once)
    _survivorship = Survivorship(config, systems)
    freeze_once()  # the process's start, out of the full collections (runtime/heap.py)


def _build(work: _Work) -> list[dict[str, Any]]:
    if _survivorship is None:
        raise RuntimeError("a golden content worker was not started with its settings")
    built = []
    for documents, pins in work:
        content = golden_content(_survivorship, [member_of(d.record()) for d in documents], pins)
        for name in WRITTEN:
            content[name] = JSONText.of(content[name])
        built.append(content)
    return built


KEYS_PART = 100_000  # records whose index keys are worked out, and sent back, at a time


class KeysBeside:
    """The match index's keys of a full resolve's records (`match.index.index_keys`),
    worked out on a process of its own while this one matches them: a hundred thousand
    records at a time, so that neither process holds every record's features twice.
    The features must not change once given (the resolve gives them their last state:
    the employer and the kind set)."""

    def __init__(self, plan: IndexPlan, features: Sequence[dict[str, str]]) -> None:
        executor = spawned(1, freeze_once)
        self._parts = [
            executor.submit(_index_keys, plan, list(features[start : start + KEYS_PART]))
            for start in range(0, len(features), KEYS_PART)
        ]
        executor.shutdown(wait=False)  # the process ends when the parts are done

    def result(self) -> IndexKeys | None:
        """The keys of every record, in order; None if the process died (the resolve
        then works them out itself, as it does without one)."""
        try:
            return joined([part.result() for part in self._parts]) if self._parts else None
        except BrokenProcessPool:
            return None


def _index_keys(plan: IndexPlan, features: list[dict[str, str]]) -> IndexKeys:
    return index_keys(plan, record_columns(features))
