"""Incremental resolve: each record that changed since it was last matched is matched
against the customers already known, through the match index, with the model the last
full resolve learned, and linked, merged or queued for review, without reading every
record. Golden ids follow the same rules as a full resolve (`golden/ids.py`), applied to
the customers the record touches.

A full resolve (`golden/resolve.py`) builds the index and learns the model; this module
refuses to run without them, or when the match settings changed since (the model and
the index would answer for settings that no longer hold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine

from accord.config.loader import Project
from accord.errors import Conflict, NotFound
from accord.golden.content import golden_content, member_of
from accord.golden.match_index import drop_entries, sync_index
from accord.golden.relationships import referenced_employer, refresh
from accord.golden.resolve import (
    MATCHING_LOCK,
    Evidence,
    Key,
    ResolveReport,
    Scope,
    completed,
    one_by_one,
    write_clusters,
)
from accord.golden.survivorship import Survivorship
from accord.govern.audit import record
from accord.match.blocking import describe_key
from accord.match.columns import IntArray
from accord.match.decisions import Decision
from accord.match.features import features_of
from accord.match.incremental import KEPT_RULE, LocalResult, NeighbourhoodScorer, Node
from accord.match.index import IndexPlan, index_keys
from accord.match.interface import Link, OversizedBlock
from accord.match.learned import record_columns
from accord.match.model import params_from_dict
from accord.store import golden as golden_store
from accord.store import match_index as index_store
from accord.store import records as record_store
from accord.store import stewardship
from accord.store.dialect import exclusive
from accord.store.engine import writing
from accord.store.types import utcnow

BATCH = 200  # records matched per transaction


class IncrementalUnavailable(Conflict):
    """There is no model or index to match against, or they were made for other settings."""


@dataclass
class Matched:
    """What matching one record found (before anything is written)."""

    record: Key
    nodes: list[Node]
    local: LocalResult | None  # None when the record's features did not change
    candidates: int = 0
    oversized: list[OversizedBlock] = field(default_factory=list)
    # the steward decisions read while matching: among the neighbourhood, and every one
    # about the record (what queuing its reviews needs)
    decided: dict[stewardship.Pair, str] = field(default_factory=dict)


class IncrementalResolver:
    """Matches records one at a time against the store, with the stored model."""

    def __init__(self, project: Project, model: dict[str, Any] | None) -> None:
        config = project.config.match
        if config.engine != "learned" or config.model is None:
            raise IncrementalUnavailable(
                "incremental matching needs the learned engine (match.engine: learned)",
                hint="run a full `accord resolve` instead",
            )
        self.plan = IndexPlan.of(config)
        if model is None:
            raise IncrementalUnavailable(
                "there is no learned model to match against yet",
                hint="run a full `accord resolve` first; it learns the model and builds the index",
            )
        if model["params"].get("settings_digest") != self.plan.settings:
            raise IncrementalUnavailable(
                "the match settings changed since the last full resolve",
                hint="run a full `accord resolve` to learn the model and rebuild the index",
            )
        self.project = project
        self.config = config
        self.scorer = NeighbourhoodScorer(config, params_from_dict(model["params"]))
        self.survivorship = Survivorship(project.config.survivorship, project.config.systems)

    # ---- matching (reads only, apart from the record's own index entry)

    def match(
        self, conn: Connection, current: record_store.CurrentRecord, *, again: bool = False
    ) -> Matched:
        """Match one current record. A record whose features did not change keeps its
        customer, unless `again`: then its neighbourhood is re-clustered all the same (what a
        steward decision about it needs)."""
        key = (current.system, current.source_id)
        features = _features(current.data, referenced_employer(conn, key, current.data))
        before = index_store.lookup(conn, key)
        old_golden = before.golden_id
        entry = before.entry
        own = record_columns([features])
        keys = index_keys(self.plan, own)
        sync_index(
            conn,
            self.plan,
            [(key, current.canonical_record_id, features)],
            complete=False,
            existing={}
            if entry is None
            else {key: (entry.id, str(before.digest), int(before.canonical_record_id or 0))},
            stored_features=None if entry is None else {entry.id: entry.features},
            planned=keys,
        )
        record = Node(key, features, old_golden)
        unchanged = entry is not None and entry.features == features
        if unchanged and old_golden is not None and not again:
            return Matched(key, [record], None)

        # the records sharing a usable block key (blocks over the size limit are skipped,
        # as in a full resolve); the record's value frequencies are read in the same
        # statement as its block sizes
        counts = index_store.counts(conn, [*keys.counted_keys(0), *keys.totals])
        limit = self.config.max_block_size
        usable = [k for k in keys.block_keys(0) if counts.get(k, 0) <= limit]
        oversized = [
            OversizedBlock(name.partition(":")[2], describe_key(own, refs, 0), counts[k])
            for (name, refs), (block, present) in zip(self.plan.blocks, keys.blocks, strict=True)
            if present[0] and counts.get(k := int(block[0]), 0) > limit
        ]
        candidates = [e for e in index_store.sharing(conn, usable) if e.key != key]
        nodes = [record] + [Node(e.key, e.features, e.golden_id) for e in candidates]
        index_of = {node.key: i for i, node in enumerate(nodes)}
        # value frequencies matter on the left of a pair only: the record, here
        columns = self.scorer.columns(nodes, self._frequencies(conn, nodes[:1], counts))
        others = self.scorer.allowed(nodes, 0, list(range(1, len(nodes))))
        scored = self.scorer.score(columns, _indexes([0] * len(others)), _indexes(others))

        # the customers the record touches: those it links to, its own, and those a
        # steward said it belongs with. Every member of them is read, so that the guard
        # sees them all, and the steward decisions among them (and the record's own) in
        # one statement; a "same" decision naming a customer not read yet (rare) reads
        # that customer and the decisions again.
        linked = self.scorer.links_of_record(columns, [(0, o) for o in others], scored)
        # (None stands for records not linked to any customer yet)
        touched: set[str | None] = {nodes[o].golden_id for o in linked} | {old_golden}
        self._add_members(conn, nodes, index_of, {g for g in touched if g})
        decided = stewardship.decisions_among(conn, list(index_of), involving=key)
        same_as = [
            pair[1] if pair[0] == key else pair[0]
            for pair, decision in decided.items()
            if decision == "same" and key in pair
        ]
        named = {nodes[index_of[other]].golden_id for other in same_as if other in index_of}
        named |= _golden_ids(conn, [other for other in same_as if other not in index_of])
        beyond = {g for g in named if g is not None and g not in touched}
        if beyond:
            touched |= beyond
            self._add_members(conn, nodes, index_of, beyond)
            decided = stewardship.decisions_among(conn, list(index_of), involving=key)
        regroup = [
            i for i, node in enumerate(nodes) if i and old_golden and node.golden_id == old_golden
        ]
        if len(nodes) > len(candidates) + 1 or regroup:
            # frequencies for the left of every pair: the record, and the members of its
            # old customer (scored among themselves)
            left_side = [nodes[0], *(nodes[i] for i in regroup)]
            columns = self.scorer.columns(nodes, self._frequencies(conn, left_side, counts))
        decisions = [
            Decision(index_of[a], index_of[b], decision == "same")
            for (a, b), decision in decided.items()
            if a in index_of and b in index_of
        ]
        local = self.scorer.cluster(
            nodes, columns, record=0, regroup=regroup, decisions=decisions, prescored=scored
        )
        # candidates of customers the record does not touch were only looked at: their
        # customers are not all here, and are not written
        local.groups = [
            group
            for group in local.groups
            if any(i == 0 or nodes[i].golden_id in touched for i in group)
        ]
        return Matched(key, nodes, local, len(candidates), oversized, decided)

    @staticmethod
    def _add_members(
        conn: Connection, nodes: list[Node], index_of: dict[Key, int], golden_ids: set[str]
    ) -> None:
        """Add every member of these customers that is not among `nodes` yet."""
        if not golden_ids:
            return
        for entry in index_store.members_of(conn, sorted(golden_ids)):
            if entry.key not in index_of:
                index_of[entry.key] = len(nodes)
                nodes.append(Node(entry.key, entry.features, entry.golden_id))

    def explain(self, conn: Connection, left: Key, right: Key) -> dict[str, Any]:
        """Every comparison's values, level and match weight for any two records, the
        prior and the total, with the stored model and the index's value frequencies."""
        entries = index_store.entries_for(conn, [left, right])
        missing = [key for key in (left, right) if key not in entries]
        if missing:
            raise NotFound(
                " and ".join(f"no record {key[1]!r} in {key[0]!r}" for key in missing)
                + " in the match index",
                hint="check the system and id; a record loaded since the last resolve is "
                "indexed by the next one (`accord resolve DIR --incremental`)",
            )
        nodes = [Node(key, entries[key].features, entries[key].golden_id) for key in (left, right)]
        columns = self.scorer.columns(nodes, self._frequencies(conn, nodes, {}))
        return self.scorer.explain(columns, [(0, 1)])[0]

    def _frequencies(
        self, conn: Connection, nodes: Sequence[Node], known: dict[int, int]
    ) -> dict[str, tuple[dict[str, int], int]]:
        """Per term-frequency column, how many entries hold each of the nodes' values, and
        how many hold any value: the counts a full resolve would find. `known` are counts
        read already (keys missing from it are read, and added to it)."""
        if not self.plan.terms:
            return {}
        columns = record_columns([node.features for node in nodes])
        keys = index_keys(self.plan, columns, blocks=False)
        wanted: set[int] = set(keys.totals)
        for term_keys, present in keys.terms:
            wanted.update(term_keys[present].tolist())
        missing = wanted - known.keys()
        if missing:
            found = index_store.counts(conn, missing)
            known.update({k: found.get(k, 0) for k in missing})
        out: dict[str, tuple[dict[str, int], int]] = {}
        for column, (term_keys, present), total in zip(
            self.plan.terms, keys.terms, keys.totals, strict=True
        ):
            values = columns.values(column)
            per_value = {
                str(values[i]): known.get(int(term_keys[i]), 0)
                for i in range(len(nodes))
                if present[i]
            }
            out[column] = (per_value, known.get(total, 0))
        return out

    # ---- records no longer current

    def remove(self, conn: Connection, key: Key, *, actor: str, report: ResolveReport) -> list[Any]:
        """Take a record that is no longer current (its load was withdrawn) out of the
        index, the crosswalk and its customer, whose golden record is built again from the
        members left (or retired when none is left); its open review pairs are withdrawn.
        The members left stay together: a record that bridged two groups of them is not
        re-clustered away; the next full resolve re-clusters them. Returns the audit
        events."""
        before = index_store.lookup(conn, key)
        if before.entry is not None:
            drop_entries(conn, self.plan, [(before.entry.id, before.entry.features)])
        golden_store.unlink(conn, [key])
        # its pairs in doubt went with it: no steward is asked about a record withdrawn
        stewardship.queue_reviews(conn, [], utcnow(), involving=key, ruled={})
        old = before.golden_id
        if old is None:
            return []
        indexed = sorted(entry.key for entry in index_store.members_of(conn, [old]))
        records = {(r.system, r.source_id): r for r in record_store.current_of(conn, indexed)}
        # members withdrawn as well are taken out in their own turn
        members = [k for k in indexed if k in records]
        scope = Scope.of(conn, members, also=frozenset({old}), restore=False)
        groups = [members] if members else []
        events = self._rewrite(
            conn,
            groups,
            records,
            scope,
            scope.evidence(),  # the links they were kept by
            touched={old},
            actor=actor,
            report=report,
        )
        report.removed += 1
        return events

    # ---- writing

    def _rewrite(
        self,
        conn: Connection,
        groups: list[list[Key]],
        records: dict[Key, record_store.CurrentRecord],
        scope: Scope,
        evidence: Evidence,
        *,
        touched: set[str],
        actor: str,
        report: ResolveReport,
    ) -> list[Any]:
        """Write `groups` as customers (golden ids, golden records, crosswalk) within
        `scope`, and the relationships of every customer touched. Returns the audit
        events."""
        events = write_clusters(
            conn,
            actor=actor,
            entity=self.project.config.entity,
            keys=groups,
            content=one_by_one(
                lambda i, pins: golden_content(
                    self.survivorship, [member_of(records[key]) for key in groups[i]], pins
                )
            ),
            evidence=evidence,
            report=report,
            scope=scope,
        )
        every = [key for group in groups for key in group]
        now_in = {key: report.assignment[key] for key in every}
        refresh(
            conn,
            set(now_in.values()) | touched,
            {key: records[key].data for key in every},
            now_in,
            utcnow(),
        )
        return events

    def apply(
        self, conn: Connection, matched: Matched, *, actor: str, report: ResolveReport
    ) -> list[Any]:
        """Write what matching found: golden ids, golden records, crosswalk, reviews.
        Returns the audit events."""
        nodes = matched.nodes
        links: list[Link] = []
        if matched.local is None:
            # the same features: only the values of the record's customer are rebuilt
            golden = nodes[0].golden_id
            members = index_store.members_of(conn, [golden]) if golden else []
            keys = [sorted({nodes[0].key, *(entry.key for entry in members)})]
        else:
            links = matched.local.links
            # in key order, as a full resolve has them: id ties go to the cluster whose
            # smallest member key comes first (golden/ids.py), not to the record that changed
            keys = sorted(
                (sorted(nodes[i].key for i in group) for group in matched.local.groups),
                key=lambda group: group[0],
            )
        every = [key for group in keys for key in group]
        scope = Scope.of(conn, every)
        records = {(r.system, r.source_id): r for r in record_store.current_of(conn, every)}
        events = self._rewrite(
            conn,
            keys,
            records,
            scope,
            _evidence(nodes, links, scope),
            touched={golden for golden, _, _ in scope.current.values()},
            actor=actor,
            report=report,
        )
        if matched.local is not None:
            review = [
                {
                    "left": nodes[link.left].key,
                    "right": nodes[link.right].key,
                    "probability": link.score if link.score is not None else 1.0,
                    "weight": link.weight,
                    "reason": link.reason or "uncertain",
                    "explanation": link.explanation,
                }
                for link in matched.local.review
            ]
            queued = stewardship.queue_reviews(
                conn, review, utcnow(), involving=matched.record, ruled=matched.decided
            )
            report.review += queued["queued"]
            report.pairs_compared += matched.local.pairs_scored
            report.links += sum(1 for link in links if link.rule != KEPT_RULE)
            for link in links:
                if link.rule != KEPT_RULE:
                    report.links_by_rule[link.rule] = report.links_by_rule.get(link.rule, 0) + 1
            seen = {(b.rule, b.key) for b in report.oversized_blocks}
            report.oversized_blocks += [b for b in matched.oversized if (b.rule, b.key) not in seen]
        return events


def resolve_changes(
    engine: Engine,
    project: Project,
    *,
    actor: str,
    keys: Sequence[Key] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResolveReport:
    """Match every record that changed since it was last matched (or only `keys`), one
    at a time, and write the outcome, `BATCH` records per transaction."""
    report = ResolveReport()
    started = time.perf_counter()
    with engine.connect() as conn:
        resolver = IncrementalResolver(project, stewardship.latest_model(conn))
        if keys is not None:
            changed, removed = list(keys), []
        else:
            changed = record_store.changed_since_matched(conn, project.config.entity)
            removed = record_store.removed_since_matched(conn)
    report.records = len(changed)
    # records no longer current first: match_batch takes them out of their customers
    pending = [*removed, *changed]
    if progress is not None:
        progress(0, len(pending))
    done = 0
    for batch in _batches(pending, BATCH):
        with writing(engine) as conn:
            exclusive(conn, MATCHING_LOCK)
            match_batch(conn, resolver, batch, actor=actor, report=report)
        done += len(batch)
        if progress is not None:
            progress(done, len(pending))
    report.golden_records = len(set(report.assignment.values()))
    report.seconds["incremental"] = time.perf_counter() - started
    return report


def match_batch(
    conn: Connection,
    resolver: IncrementalResolver,
    keys: Sequence[Key],
    *,
    actor: str,
    report: ResolveReport,
    again: bool = False,
) -> None:
    """Match the current records of `keys` one at a time, in that order (taking those no
    longer current out of their customers), and write the outcomes, in the caller's
    transaction. It should hold `MATCHING_LOCK`: two transactions matching at once could
    each link a record into a customer the other is changing. With `again`, records whose
    features did not change are re-clustered too (after a steward decision about them)."""
    events: list[Any] = []
    found = {(r.system, r.source_id): r for r in record_store.current_of(conn, keys)}
    # in the order given (the queue's: arrival), since where a record lands can depend
    # on which records were matched before it
    for key in keys:
        current = found.get(key)
        if current is None:  # no longer current (its load was withdrawn)
            events += resolver.remove(conn, key, actor=actor, report=report)
            continue
        matched = resolver.match(conn, current, again=again)
        events += resolver.apply(conn, matched, actor=actor, report=report)
    record(conn, actor, [*events, completed(resolver.project, report, mode="incremental")])


def _batches(items: Sequence[Key], size: int) -> Iterator[list[Key]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _features(data: dict[str, Any], employer: str | None = None) -> dict[str, str]:
    features = features_of(data, employer)
    if data.get("kind"):
        features["kind"] = str(data["kind"])
    return features


def _golden_ids(conn: Connection, keys: Sequence[Key]) -> set[str]:
    if not keys:
        return set()
    return {row["golden_id"] for row in golden_store.crosswalk_for(conn, list(keys)).values()}


def _indexes(values: Sequence[int]) -> IntArray:
    return np.array(values, dtype=np.int64)


def _evidence(nodes: Sequence[Node], links: Sequence[Link], scope: Scope) -> Evidence:
    """Per record, the link that put it in its customer: records of customers kept whole
    keep the evidence they had; the others take the first new link that reached them."""
    found: Evidence = {}
    kept = {i for link in links if link.rule == KEPT_RULE for i in (link.left, link.right)}
    for i in sorted(kept):
        key = nodes[i].key
        if key in scope.current:
            _, rule, proof = scope.current[key]
            partner = proof.get("linked_to")
            found[key] = (
                rule,
                (str(partner[0]), str(partner[1])) if partner else None,
                proof.get("probability"),
            )
    for link in links:
        if link.rule == KEPT_RULE:
            continue
        left, right = nodes[link.left].key, nodes[link.right].key
        found.setdefault(left, (link.rule, right, link.score))
        found.setdefault(right, (link.rule, left, link.score))
    return found
