"""The resolve job: match every current record, cluster, keep golden ids, rebuild golden
records, and write what changed, with the crosswalk and audit, in one transaction.

A re-run over unchanged data writes nothing; the outcome depends only on the data and the
project, never on the order records arrived in.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine

from accord.config import versions
from accord.config.loader import Project
from accord.digest import digest
from accord.golden.ids import assign_ids
from accord.golden.match_index import sync_index
from accord.golden.relationships import referenced_employers, sync_all
from accord.golden.survivorship import Member, Survivorship
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.match import Link, Matcher, MatchRecord, build_matcher
from accord.match.clusters import clusters as connected
from accord.match.decisions import Decision, apply_decisions
from accord.match.features import features_of
from accord.match.index import IndexPlan
from accord.match.interface import OversizedBlock
from accord.store import golden as golden_store
from accord.store import records as record_store
from accord.store import stewardship
from accord.store.engine import writing
from accord.store.types import utcnow

Progress = Callable[[str], None]  # called with the name of each stage as it starts
WRITE_BATCH = 1000
Key = tuple[str, str]  # (system, source id)
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
    relationships: int = 0  # contact of, subsidiary of: links between customers
    dangling_references: int = 0  # references to records Accord does not hold
    ambiguous_employers: int = 0  # employer names that fit several organizations
    seconds: dict[str, float] = field(default_factory=dict)
    # (system, source id) -> golden id, for evaluation against ground truth
    assignment: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)


def resolve(
    engine: Engine, project: Project, *, actor: str, progress: Progress | None = None
) -> ResolveReport:
    report = ResolveReport()
    clock = _StageClock(report, progress)

    clock.start("read")
    with engine.connect() as conn:
        members = [
            Member(
                r.system,
                r.source_id,
                r.source_record_id,
                r.canonical_record_id,
                r.mapping_version,
                r.data,
                r.received_at,
            )
            for r in record_store.current_records(conn, project.config.entity)
        ]
        decided = stewardship.decisions(conn)
    report.records = len(members)

    clock.start("match")
    employers = referenced_employers(((m.system, m.source_id), m.data) for m in members)
    match_records = [
        MatchRecord(
            (m.system, m.source_id),
            m.data.get("kind"),
            features_of(m.data, employers.get((m.system, m.source_id))),
        )
        for m in members
    ]
    matcher = build_matcher(project.config.match)
    learned = project.config.match.engine == "learned"
    plan = IndexPlan.of(project.config.match) if learned else None
    result = matcher.link(match_records)
    index = {(m.system, m.source_id): i for i, m in enumerate(members)}
    links, held = apply_decisions(
        len(members),
        result.links,
        [
            Decision(index[left], index[right], decision == "same")
            for (left, right), decision in decided.items()
            if left in index and right in index
        ],
    )
    report.links = len(links)
    report.links_by_rule = dict(Counter(link.rule for link in links))
    report.pairs_compared = result.pairs_compared
    report.oversized_blocks = result.oversized_blocks
    report.match_details = result.details
    review = [
        {
            "left": (members[link.left].system, members[link.left].source_id),
            "right": (members[link.right].system, members[link.right].source_id),
            "probability": link.score if link.score is not None else 1.0,
            "weight": link.weight,
            "reason": link.reason or "uncertain",
            "explanation": link.explanation,
        }
        for link in [*result.review, *_explained(matcher, held)]
    ]

    clock.start("cluster")
    groups = connected(len(members), ((link.left, link.right) for link in links))
    evidence = _evidence(links, members)

    clock.start("survive")
    survivorship = Survivorship(project.config.survivorship, project.config.systems)
    built = [golden_content(survivorship, [members[i] for i in group]) for group in groups]

    clock.start("write")
    with writing(engine) as conn:
        versions.apply(conn, project, actor)
        keys = [[(members[i].system, members[i].source_id) for i in group] for group in groups]
        events = write_clusters(
            conn,
            actor=actor,
            entity=project.config.entity,
            keys=keys,
            built=built,
            evidence=evidence,
            report=report,
            scope=Scope.everything(conn),
        )
        report.golden_records = len(keys)
        found, _ = sync_all(
            conn, (((m.system, m.source_id), m.data) for m in members), report.assignment, utcnow()
        )
        report.relationships, report.dangling_references = len(found.found), found.dangling
        report.ambiguous_employers = found.ambiguous_employers
        record(conn, actor, [*events, completed(project, report)])
        if plan is not None:
            sync_index(
                conn,
                plan,
                [
                    ((m.system, m.source_id), m.canonical_record_id, r.features | kind_of(r))
                    for m, r in zip(members, match_records, strict=True)
                ],
                complete=True,
            )
        queue = stewardship.sync_reviews(conn, review, utcnow())
        report.review = queue["queued"]
        if result.details.get("model"):
            stewardship.save_model(
                conn,
                project_digest=project.digest,
                params=result.details["model"]
                | {"settings_digest": plan.settings if plan else None},
                blocking=result.details.get("blocking") or {},
                at=utcnow(),
            )
    clock.stop()
    return report


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
    built: list[dict[str, Any]],
    evidence: Evidence,
    report: ResolveReport,
    scope: Scope,
) -> list[AuditEvent]:
    """Keep golden ids, write changed golden records and links, retire ids; returns the
    audit events (the caller records them with its own summary)."""
    current, fingerprints, previous_ids = scope.current, scope.fingerprints, scope.previous
    ids = assign_ids(
        keys,
        {key: link[0] for key, link in current.items()},
        lambda n: golden_store.allocate_ids(conn, n),
        known_ids=set(fingerprints),
        previous=dict(previous_ids),
        restorable=scope.restorable,
    )
    inserts, updates, events = [], [], []
    changed_ids = [
        golden_id
        for golden_id, content in zip(ids.cluster_ids, built, strict=True)
        if golden_id not in ids.new_ids and fingerprints.get(golden_id) != content["fingerprint"]
    ]
    previous = golden_store.data_of(conn, changed_ids)
    for golden_id, content in zip(ids.cluster_ids, built, strict=True):
        row = content | {"golden_id": golden_id, "entity_type": entity}
        if golden_id in ids.new_ids:
            inserts.append(row)
            events.append(_event(AuditAction.GOLDEN_CREATED, golden_id, content))
        elif golden_id in previous:
            updates.append(row)
            changed = sorted(
                k
                for k in content["data"].keys() | previous[golden_id].keys()
                if content["data"].get(k) != previous[golden_id].get(k)
            )
            events.append(
                _event(AuditAction.GOLDEN_UPDATED, golden_id, content, {"fields": changed})
            )
        else:
            report.unchanged += 1
    report.created += len(inserts)
    report.updated += len(updates)
    for start in range(0, max(len(inserts), len(updates)), WRITE_BATCH):
        golden_store.insert_golden(conn, inserts[start : start + WRITE_BATCH])
        golden_store.update_golden(conn, updates[start : start + WRITE_BATCH])
    links = []
    for golden_id, group_keys in zip(ids.cluster_ids, keys, strict=True):
        for key in group_keys:
            rule, partner, probability = evidence.get(key, ("single", None, None))
            proof: dict[str, Any] = {"linked_to": list(partner)} if partner else {}
            if probability is not None:
                proof["probability"] = round(probability, 6)
            report.assignment[key] = golden_id
            was = current.get(key)
            if was != (golden_id, rule, proof):
                moved = was is not None and was[0] != golden_id
                links.append(
                    {
                        "system": key[0],
                        "source_id": key[1],
                        "golden_id": golden_id,
                        "rule": rule,
                        "score": probability,
                        "evidence": proof,
                        "previous_golden_id": (
                            was[0] if was is not None and moved else previous_ids.get(key)
                        ),
                    }
                )
    for start in range(0, len(links), WRITE_BATCH):
        golden_store.link(conn, links[start : start + WRITE_BATCH], decided_by=actor)
    golden_store.retire(conn, ids.merged, ids.retired)
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


def golden_content(survivorship: Survivorship, members: Sequence[Member]) -> dict[str, Any]:
    data, lineage = survivorship.build(members)
    member_keys = sorted(f"{m.system}/{m.source_id}" for m in members)
    fingerprint = digest([data, lineage, member_keys])
    name = display_name(data)
    searchable = [
        name,
        data.get("email"),
        data.get("phone"),
        data.get("city"),
        data.get("tax_id"),
        data.get("postcode"),
        *member_keys,
    ]
    return {
        "display_name": name,
        "search_text": " ".join(str(s) for s in searchable if s).casefold(),
        "data": data,
        "lineage": lineage,
        "member_count": len(members),
        "fingerprint": fingerprint,
    }


def display_name(data: dict[str, Any]) -> str:
    if data.get("kind") == "organization" and data.get("organization_name"):
        parts = [data["organization_name"], data.get("legal_form")]
    else:
        parts = [data.get("given_name"), data.get("family_name")]
    return " ".join(str(p) for p in parts if p) or data.get("email") or "(no name)"


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


def _evidence(links: Sequence[Link], members: Sequence[Member]) -> Evidence:
    """For each linked record, the first link that joined it: its rule, its partner and,
    from the learned engine, the match probability."""
    found: Evidence = {}
    for link in links:
        left, right = members[link.left], members[link.right]
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


class _StageClock:
    def __init__(self, report: ResolveReport, progress: Progress | None) -> None:
        self.report = report
        self.progress = progress
        self.stage: str | None = None
        self.started = 0.0

    def start(self, stage: str) -> None:
        self.stop()
        self.stage, self.started = stage, time.perf_counter()
        if self.progress is not None:
            self.progress(stage)

    def stop(self) -> None:
        if self.stage is not None:
            self.report.seconds[self.stage] = time.perf_counter() - self.started
            self.stage = None
