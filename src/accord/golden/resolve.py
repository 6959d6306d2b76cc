"""The resolve job: match every current record, cluster, keep golden ids, rebuild golden
records, and write what changed, with the crosswalk and audit, in one transaction.

A re-run over unchanged data writes nothing; the outcome depends only on the data and the
project, never on the order records arrived in.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine

from accord.config import versions
from accord.config.loader import Project
from accord.golden.content import golden_content, member_of
from accord.golden.ids import assign_ids
from accord.golden.match_index import sync_index
from accord.golden.parallel import Batch, ContentPool, KeysBeside, ReadPool, read_documents
from accord.golden.relationships import referenced_employers, sync_all
from accord.golden.survivorship import Pin, Survivorship
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.match import Link, Matcher, MatchRecord, build_matcher
from accord.match.clusters import clusters as connected
from accord.match.decisions import Decision, apply_decisions
from accord.match.features import set_employer
from accord.match.index import IndexPlan
from accord.match.interface import OversizedBlock
from accord.settings import Settings
from accord.store import golden as golden_store
from accord.store import outbox, stewardship, tables
from accord.store import overrides as override_store
from accord.store import queue as work_queue
from accord.store import records as record_store
from accord.store.dialect import exclusive, refresh_statistics
from accord.store.engine import JSONText, json_value, writing
from accord.store.records import CurrentDocument
from accord.store.types import utcnow

Progress = Callable[[str], None]  # called with the name of each stage as it starts
WRITE_BATCH = 1000
WRITE_CACHE_MIB = 256  # SQLite's page cache while a resolve writes (see store.engine.writing)
Key = tuple[str, str]  # (system, source id)
# match features whose values many records share (names, places, dates), held once each
COMMON = frozenset({"given_name", "family_name", "city", "postcode", "country", "birth_date"})
# per record, the link that put it in its customer: rule, partner, match probability
Evidence = dict[Key, tuple[str, Key | None, float | None]]


@dataclass
class ResolveReport:
    records: int = 0
    golden_records: int = 0
    links: int = 0
    links_by_rule: dict[str, int] = field(default_factory=dict)
    pairs_compared: int = 0
    review: int = 0  # pairs queued for a steward: unsure, or they would chain contradictions
    match_details: dict[str, Any] = field(default_factory=dict, repr=False)
    oversized_blocks: list[OversizedBlock] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    retired: int = 0
    removed: int = 0  # records no longer current (a withdrawn load's) taken out
    relationships: int = 0  # contact of, subsidiary of: links between customers
    dangling_references: int = 0  # references to records Accord does not hold
    ambiguous_employers: int = 0  # employer names that fit several organizations
    ambiguous_parent_tax_ids: int = 0  # parents' tax ids that several customers hold
    unknown_parent_tax_ids: int = 0  # parents' tax ids that no customer holds
    seconds: dict[str, float] = field(default_factory=dict)
    # (system, source id) -> golden id, for evaluation against ground truth
    assignment: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)


MATCHING_LOCK = "accord.matching"  # one transaction writes matching outcomes at a time

# The stages of a full resolve, in order, as `progress` is told of them.
STAGES = ["read", "match", "cluster", "index", "golden", "relationships", "finish"]
# the tables a full resolve rewrites, whose planner statistics it brings up to date
# (`dialect.refresh_statistics`): incremental matching looks every record up in them
WRITTEN = (
    tables.match_entry,
    tables.match_key,
    tables.match_count,
    tables.crosswalk,
    tables.golden_record,
    tables.golden_change,
    tables.match_review,
    tables.relationship,
    tables.match_wait,
    tables.audit_log,
)


def resolve(
    engine: Engine, project: Project, *, actor: str, progress: Progress | None = None
) -> ResolveReport:
    """Match every current record, cluster, and write golden records, crosswalk, match
    index, relationships, reviews and audit in one transaction.

    What is held of each record is its match features, what it may state of
    relationships, and its canonical data as JSON text, read again a batch of customers
    at a time when golden records are built (and written), so neither the records' data
    nor the golden records' content is ever all in memory."""
    report = ResolveReport()
    with _Stages(report, progress) as clock:
        clock.start("read")
        with writing(engine) as conn:
            work_queue.mark_covered(conn, project.config.entity)
        with engine.connect() as conn:
            read = _read(conn, project.config.entity)
            decided = stewardship.decisions(conn)
        stored = read.stored
        report.records = len(stored)

        clock.start("match")
        matched = _match(project, read, decided, report)

        clock.start("cluster")
        groups = connected(len(stored), ((link.left, link.right) for link in matched.links))
        evidence = _evidence(matched.links, stored)
        keys = [[(stored[i].system, stored[i].source_id) for i in group] for group in groups]
        matched.links = []  # let them go: the clusters are all that is needed now

        with writing(engine, cache_mib=WRITE_CACHE_MIB) as conn:
            exclusive(conn, MATCHING_LOCK)
            versions.apply(conn, project, actor)
            removed_at = work_queue.remove_covered(conn, project.config.entity)
            clock.start("index")
            if matched.index is not None:
                planned = matched.keys.result() if matched.keys is not None else None
                sync_index(conn, matched.index[0], matched.index[1], complete=True, planned=planned)
                matched.index = matched.keys = None  # the features and keys: done with

            clock.start("golden")
            scope = Scope.everything(conn)
            with _golden_builder(project, stored, groups) as content:
                events = write_clusters(
                    conn,
                    actor=actor,
                    entity=project.config.entity,
                    keys=keys,
                    content=content,
                    evidence=evidence,
                    report=report,
                    scope=scope,
                )
            # records no longer current (a withdrawn load created them) leave the crosswalk
            gone = [key for key in scope.current if key not in report.assignment]
            golden_store.unlink(conn, gone)
            report.removed = len(gone)
            report.golden_records = len(keys)

            clock.start("relationships")
            found, _ = sync_all(conn, read.stating.items(), report.assignment, utcnow())
            report.relationships, report.dangling_references = len(found.found), found.dangling
            report.ambiguous_employers = found.ambiguous_employers
            report.ambiguous_parent_tax_ids = found.ambiguous_parent_tax_ids
            report.unknown_parent_tax_ids = found.unknown_parent_tax_ids

            clock.start("finish")
            record(conn, actor, [*events, completed(project, report)])
            reviews = stewardship.sync_reviews(conn, matched.review, utcnow())
            report.review = reviews["queued"]
            if matched.model is not None:
                stewardship.save_model(conn, project_digest=project.digest, **matched.model)
            # the covered records' waits end as the writes do, not as they began
            work_queue.end_covered_waits(conn, removed_at)
        refresh_statistics(engine, WRITTEN, report.records)
    return report


@dataclass
class _Read:
    stored: list[CurrentDocument]  # every current record, its data as JSON text
    records: list[MatchRecord]  # their match features, in the same order
    stating: dict[Key, dict[str, Any]]  # what records may state of relationships


def _read(conn: Connection, entity: str) -> _Read:
    """Every current record, each one's data read once: for its match features and what
    it may state of relationships; the data itself is let go. From READ_BESIDE_FROM
    records on, a process beside this one reads each page (`golden.parallel.ReadPool`)
    while this one fetches the next."""
    read = _Read([], [], {})
    common: dict[str, str] = {}  # one copy of each value of the features in COMMON
    documents = record_store.current_documents(conn, entity, READ_PAGE)
    pages = iter(lambda: list(islice(documents, READ_PAGE)), [])
    with ExitStack() as stack:
        if _beside(record_store.head_count(conn), READ_BESIDE_FROM):
            readings = stack.enter_context(ReadPool()).read(pages)
        else:
            readings = ((page, read_documents([d.document for d in page])) for page in pages)
        for page, kept in readings:
            for doc, (features, kind, view) in zip(page, kept, strict=True):
                key = (doc.system, doc.source_id)
                for name in COMMON.intersection(features):
                    value = features[name]
                    features[name] = common.setdefault(value, value)
                read.stored.append(doc)
                read.records.append(MatchRecord(key, kind, features))
                if view is not None:
                    read.stating[key] = view
    return read


@dataclass
class _Matched:
    links: list[Link]  # after steward decisions
    review: list[dict[str, Any]]  # pairs for the review queue
    index: tuple[IndexPlan, list[tuple[Key, int, dict[str, str]]]] | None  # entries to keep
    model: dict[str, Any] | None  # the learned model, to save
    keys: KeysBeside | None = None  # the entries' keys, worked out beside, when they are


def _match(
    project: Project,
    read: _Read,
    decided: dict[tuple[Key, Key], str],
    report: ResolveReport,
) -> _Matched:
    """Link the records, apply steward decisions and explain the pairs for review. The
    matcher and its columns are dropped on return; what is kept is what the writes need."""
    stored, match_records = read.stored, read.records
    index = {record.key: i for i, record in enumerate(match_records)}
    # a person's employer, when only the account it references names it
    for key, employer in referenced_employers(read.stating.items()).items():
        set_employer(match_records[index[key]].features, employer)
    plan = IndexPlan.of(project.config.match) if project.config.match.engine == "learned" else None
    beside = None
    if plan is not None:
        # the features, with the kind, become the index's entries (the learned matcher
        # adds the kind to them as well); their keys are worked out beside while matching
        for r in match_records:
            r.features.update(kind_of(r))
        if _beside(len(match_records), KEYS_FROM):
            beside = KeysBeside(plan, [r.features for r in match_records])
    matcher = build_matcher(project.config.match)
    result = matcher.link(match_records)
    links, held = apply_decisions(
        len(stored),
        result.links,
        [
            Decision(index[left], index[right], decision == "same")
            for (left, right), decision in decided.items()
            if left in index and right in index
        ],
    )
    del index
    report.links = len(links)
    report.links_by_rule = dict(Counter(link.rule for link in links))
    report.pairs_compared = result.pairs_compared
    report.oversized_blocks = result.oversized_blocks
    report.match_details = result.details
    review = [
        {
            "left": match_records[link.left].key,
            "right": match_records[link.right].key,
            "probability": link.score if link.score is not None else 1.0,
            "weight": link.weight,
            "reason": link.reason or "uncertain",
            # as text: a million customers' review pairs held as dicts would take a GB
            "explanation": JSONText.of(link.explanation) if link.explanation else None,
        }
        for link in [*result.review, *_explained(matcher, held)]
    ]
    model = None
    if result.details.get("model"):
        model = {
            "params": result.details["model"]
            | {"settings_digest": plan.settings if plan else None},
            "blocking": result.details.get("blocking") or {},
            "at": utcnow(),
        }
    entries = None
    if plan is not None:
        entries = (
            plan,
            [
                (r.key, doc.canonical_record_id, r.features)
                for doc, r in zip(stored, match_records, strict=True)
            ],
        )
    read.records = []  # the features live on in the entries, or not at all
    return _Matched(links, review, entries, model, beside)


@dataclass
class Scope:
    """What a write may change, as it stands before: the crosswalk of the records in
    scope, the fingerprints of the active golden records in scope (those left without a
    cluster are merged or retired), each record's golden id before its last move, and
    the merged ids a split may bring back. A full resolve's scope is everything."""

    current: dict[Key, tuple[str, str, dict[str, Any]]]
    fingerprints: dict[str, str]
    previous: dict[Key, str]
    restorable: set[str]

    @classmethod
    def of(
        cls,
        conn: Connection,
        keys: Sequence[Key],
        *,
        also: frozenset[str] = frozenset(),
        restore: bool = True,
    ) -> Scope:
        """The scope of a write that changes the customers of `keys` (and the golden
        records `also`, which may be left without members); with `restore`, a merged id
        a member had before may come back."""
        crosswalk = golden_store.crosswalk_for(conn, list(keys))
        ids = {row["golden_id"] for row in crosswalk.values()} | also
        previous = {
            k: row["previous_golden_id"]
            for k, row in crosswalk.items()
            if row["previous_golden_id"]
        }
        statuses = golden_store.status_of(conn, ids | set(previous.values()))
        return cls(
            current={
                k: (row["golden_id"], row["rule"], row["evidence"]) for k, row in crosswalk.items()
            },
            fingerprints={
                g: fingerprint
                for g, (status, fingerprint) in statuses.items()
                if g in ids and status == "active"
            },
            previous=previous,
            restorable={g for g in previous.values() if statuses.get(g, ("", ""))[0] == "merged"}
            if restore
            else set(),
        )

    def evidence(self) -> Evidence:
        """Per record in scope, the link it was kept by (a write that keeps its
        customers as they are)."""
        found: Evidence = {}
        for key, (_, rule, proof) in self.current.items():
            partner = proof.get("linked_to")
            found[key] = (
                rule,
                (str(partner[0]), str(partner[1])) if partner else None,
                proof.get("probability"),
            )
        return found

    @classmethod
    def everything(cls, conn: Connection) -> Scope:
        return cls(
            golden_store.crosswalk_map(conn),
            golden_store.active_fingerprints(conn),
            golden_store.previous_ids(conn),
            golden_store.merged_ids(conn),
        )


def write_clusters(
    conn: Connection,
    *,
    actor: str,
    entity: str,
    keys: list[list[Key]],
    content: Contents,
    evidence: Evidence,
    report: ResolveReport,
    scope: Scope,
) -> list[AuditEvent]:
    """Keep golden ids, write changed golden records and links, retire ids; returns the
    audit events (the caller records them with its own summary). `content` builds the
    golden content of batches of clusters (positions in `keys`) with the stewards'
    overrides of their customers (`golden_content`; `one_by_one` here, or
    `golden.parallel.ContentPool` beside); what it gives is written and let go before
    the next batch. Overrides of customers merged away follow them
    (`store.overrides.follow_merges`)."""
    current, fingerprints, previous_ids = scope.current, scope.fingerprints, scope.previous
    ids = assign_ids(
        keys,
        {key: link[0] for key, link in current.items()},
        lambda n: golden_store.allocate_ids(conn, n),
        known_ids=set(fingerprints),
        previous=dict(previous_ids),
        restorable=scope.restorable,
    )
    pinned = override_store.follow_merges(
        override_store.pins_of(conn, set(ids.cluster_ids) | set(ids.merged)), ids.merged
    )
    events: list[AuditEvent] = []
    searchable = golden_store.SearchBacklog()  # indexed once all batches are written
    batches = (
        [
            (i, _pins(pinned.pins.get(ids.cluster_ids[i])))
            for i in range(start, min(start + WRITE_BATCH, len(keys)))
        ]
        for start in range(0, len(keys), WRITE_BATCH)
    )
    for asked, contents in content(batches):
        built = {i: golden for (i, _), golden in zip(asked, contents, strict=True)}
        batch = list(built)
        changed = [
            ids.cluster_ids[i]
            for i in batch
            if ids.cluster_ids[i] not in ids.new_ids
            and fingerprints.get(ids.cluster_ids[i]) != built[i]["fingerprint"]
        ]
        previous = golden_store.data_of(conn, changed)
        inserts, updates, changes = [], [], []
        for i in batch:
            golden_id, golden = ids.cluster_ids[i], built[i]
            row = {name: golden[name] for name in GOLDEN_COLUMNS}
            row |= {"golden_id": golden_id, "entity_type": entity}
            if golden_id in ids.new_ids:
                inserts.append(row)
                events.append(_event(AuditAction.GOLDEN_CREATED, golden_id, golden))
                changes.append(_change(outbox.CREATED, golden_id, golden, None))
            elif golden_id in previous:
                updates.append(row)
                was, now = previous[golden_id], _document(golden["data"])
                fields = sorted(k for k in now.keys() | was.keys() if now.get(k) != was.get(k))
                events.append(
                    _event(AuditAction.GOLDEN_UPDATED, golden_id, golden, {"fields": fields})
                )
                changes.append(_change(outbox.UPDATED, golden_id, golden, fields))
            else:
                report.unchanged += 1
        report.created += len(inserts)
        report.updated += len(updates)
        golden_store.insert_golden(conn, inserts, searchable)
        golden_store.update_golden(conn, updates, searchable)
        outbox.record(conn, changes)
        golden_store.link(
            conn,
            _crosswalk_rows(
                [(ids.cluster_ids[i], keys[i]) for i in batch], evidence, scope, report
            ),
            decided_by=actor,
        )
    searchable.index(conn)
    golden_store.retire(conn, ids.merged, ids.retired)
    override_store.store_merges(conn, pinned)
    events += [
        AuditEvent(
            AuditAction.GOLDEN_OVERRIDE_SET_ASIDE,
            "golden",
            row["golden_id"],
            {
                "field": row["field"],
                "value": row["value"],
                "set_by": row["set_by"],
                "kept": row["kept"],
            },
        )
        for row in pinned.set_aside
    ]
    outbox.record(
        conn,
        [
            {"golden_id": old, "change": outbox.MERGED, "merged_into": new}
            for old, new in sorted(ids.merged.items())
        ]
        + [{"golden_id": old, "change": outbox.RETIRED} for old in sorted(ids.retired)],
    )
    events += [
        AuditEvent(AuditAction.GOLDEN_MERGED, "golden", old, {"into": new})
        for old, new in sorted(ids.merged.items())
    ]
    events += [AuditEvent(AuditAction.GOLDEN_RETIRED, "golden", old) for old in sorted(ids.retired)]
    events += [
        AuditEvent(AuditAction.GOLDEN_RESTORED, "golden", restored)
        for restored in sorted(ids.restored)
    ]
    report.merged += len(ids.merged)
    report.retired += len(ids.retired)
    return events


def _pins(rows: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Pin]:
    """A customer's stored overrides as survivorship takes them."""
    return {
        name: Pin(row["value"], row["reason"], row["set_by"], row["set_at"])
        for name, row in (rows or {}).items()
    }


def _change(
    change: str, golden_id: str, golden: dict[str, Any], fields: list[str] | None
) -> dict[str, Any]:
    """An outbox change: the golden values after it and the system each came from."""
    return {
        "golden_id": golden_id,
        "change": change,
        "data": golden["data"],
        "sources": golden["sources"],
        "fields": fields,
    }


def _crosswalk_rows(
    clusters: list[tuple[str, list[Key]]], evidence: Evidence, scope: Scope, report: ResolveReport
) -> list[dict[str, Any]]:
    """The crosswalk rows that change for these (golden id, member keys) clusters; notes
    each record's golden id in the report."""
    rows = []
    for golden_id, group_keys in clusters:
        for key in group_keys:
            rule, partner, probability = evidence.get(key, ("single", None, None))
            proof: dict[str, Any] = {"linked_to": list(partner)} if partner else {}
            if probability is not None:
                proof["probability"] = round(probability, 6)
            report.assignment[key] = golden_id
            was = scope.current.get(key)
            if was != (golden_id, rule, proof):
                moved = was is not None and was[0] != golden_id
                rows.append(
                    {
                        "system": key[0],
                        "source_id": key[1],
                        "golden_id": golden_id,
                        "rule": rule,
                        "score": probability,
                        "evidence": proof,
                        "previous_golden_id": (
                            was[0] if was is not None and moved else scope.previous.get(key)
                        ),
                    }
                )
    return rows


def completed(project: Project, report: ResolveReport, mode: str = "full") -> AuditEvent:
    return AuditEvent(
        AuditAction.RESOLVE_COMPLETED,
        "project",
        project.digest,
        {
            "mode": mode,
            "records": report.records,
            "golden_records": report.golden_records,
            "created": report.created,
            "updated": report.updated,
            "merged": report.merged,
            "retired": report.retired,
            "links_by_rule": report.links_by_rule,
        },
    )


def kind_of(record: MatchRecord) -> dict[str, str]:
    return {"kind": record.kind} if record.kind else {}


# the columns of golden_record that golden content gives
GOLDEN_COLUMNS = (
    "display_name",
    "search_text",
    "data",
    "lineage",
    "member_count",
    "fingerprint",
)
# builds golden content for batches of clusters, giving each batch back with it
Contents = Callable[[Iterable[Batch]], Iterator[tuple[Batch, list[dict[str, Any]]]]]
# clusters from this many on, a full resolve builds golden content on a process of its own
PARALLEL_FROM = 20_000
# records from this many on, it works out their match index keys on one while matching
KEYS_FROM = 100_000
# records from this many on, one reads them (features from their JSON text) as they are
# fetched: below, its start (about 1.5 s) costs more than it saves (benchmarks/README.md)
READ_BESIDE_FROM = 200_000
READ_PAGE = 5000  # records fetched, and read, at a time


def one_by_one(content: Callable[[int, Mapping[str, Pin]], dict[str, Any]]) -> Contents:
    """Golden content built in this process, `content(i, pins)` a cluster at a time."""

    def build(batches: Iterable[Batch]) -> Iterator[tuple[Batch, list[dict[str, Any]]]]:
        for batch in batches:
            yield batch, [content(i, pins) for i, pins in batch]

    return build


@contextmanager
def _golden_builder(
    project: Project, stored: Sequence[CurrentDocument], groups: Sequence[Sequence[int]]
) -> Iterator[Contents]:
    """How a full resolve builds golden content: on a process of its own beside this
    one (`golden.parallel`), for PARALLEL_FROM clusters or more unless
    ACCORD_RESOLVE_WORKERS is 0, else here."""
    config = project.config
    if not _beside(len(groups), PARALLEL_FROM):
        survivorship = Survivorship(config.survivorship, config.systems)
        yield one_by_one(
            lambda i, pins: golden_content(
                survivorship, [member_of(stored[j].record()) for j in groups[i]], pins
            )
        )
        return
    with ContentPool(config.survivorship, config.systems, stored, groups) as pool:
        yield pool.build


def _beside(size: int, threshold: int) -> bool:
    """Whether a full resolve does work of `size` (customers, records) on a process
    beside it: ACCORD_RESOLVE_WORKERS=1 always, 0 never, unset from `threshold` on."""
    wanted = Settings().resolve_workers
    return bool(wanted) if wanted is not None else size >= threshold


def _document(value: Any) -> Any:
    """A golden document as a value, from its JSON text if it came so (`golden.parallel`)."""
    return json_value(value) if isinstance(value, JSONText) else value


def _explained(matcher: Matcher, links: list[Link]) -> list[Link]:
    """The links, each with the matcher's explanation if it has none yet."""
    missing = [i for i, link in enumerate(links) if link.explanation is None]
    if not missing:
        return links
    found = matcher.explain([(links[i].left, links[i].right) for i in missing])
    out = list(links)
    for i, explanation in zip(missing, found, strict=True):
        out[i] = replace(links[i], explanation=explanation)
    return out


def _evidence(links: Sequence[Link], stored: Sequence[CurrentDocument]) -> Evidence:
    """For each linked record, the first link that joined it: its rule, its partner and,
    from the learned engine, the match probability."""
    found: Evidence = {}
    for link in links:
        left, right = stored[link.left], stored[link.right]
        left_key, right_key = (left.system, left.source_id), (right.system, right.source_id)
        found.setdefault(left_key, (link.rule, right_key, link.score))
        found.setdefault(right_key, (link.rule, left_key, link.score))
    return found


def _event(
    action: AuditAction,
    golden_id: str,
    content: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> AuditEvent:
    details = {"members": content["member_count"], "fingerprint": content["fingerprint"]}
    return AuditEvent(action, "golden", golden_id, details | (extra or {}))


class _Stages:
    """Times each stage into the report and tells `progress` as each one starts.

    While it is open, Python's cyclic garbage collector is off. A resolve keeps millions
    of objects alive for its whole run (records, features, clusters) and makes almost no
    reference cycles (measured: some 5,000 cyclic objects in a resolve of 100,000
    records), but the collector would walk the live objects again and again as new ones
    are made: a fifth to a third of a resolve's time. Objects are still freed when their
    last reference goes; the collector is turned back on, if it was on, on exit. (A full
    resolve is a command of its own, not run inside the web server.)"""

    def __init__(self, report: ResolveReport, progress: Progress | None) -> None:
        self.report = report
        self.progress = progress
        self.stage: str | None = None
        self.started = 0.0
        self.collecting = gc.isenabled()

    def __enter__(self) -> _Stages:
        gc.disable()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._finish_stage()
        if self.collecting:
            gc.enable()

    def start(self, stage: str) -> None:
        self._finish_stage()
        self.stage, self.started = stage, time.perf_counter()
        if self.progress is not None:
            self.progress(stage)

    def _finish_stage(self) -> None:
        if self.stage is not None:
            self.report.seconds[self.stage] = time.perf_counter() - self.started
            self.stage = None
