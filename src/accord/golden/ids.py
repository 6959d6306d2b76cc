"""Persistent golden ids across re-runs, merges and splits.

Each new cluster keeps the existing golden id that most of its members already carry;
an id goes to at most one cluster, the one holding most of its members (ties go to the
cluster whose smallest member key comes first, so the outcome is deterministic). Clusters
left without an id take back an id that most of their members had before it was merged
away (a split undoing a merge restores the old customer), or else get new ones. An id
that no cluster keeps is merged into the cluster that took most of its members, or
retired if its members are all gone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field


@dataclass
class IdAssignment:
    cluster_ids: list[str]  # one per cluster, in input order
    new_ids: set[str] = field(default_factory=set)
    merged: dict[str, str] = field(default_factory=dict)  # old id -> the id it lives on in
    retired: set[str] = field(default_factory=set)
    restored: set[str] = field(default_factory=set)  # merged ids brought back by a split


def assign_ids(
    clusters: Sequence[Sequence[Hashable]],
    current: dict[Hashable, str],
    allocate: Callable[[int], list[str]],
    *,
    known_ids: set[str] | None = None,
    previous: dict[Hashable, str] | None = None,
    restorable: set[str] | None = None,
) -> IdAssignment:
    """Golden ids for `clusters` (lists of member keys), given each key's `current` id.
    `known_ids` are the active ids before this run, so that those left empty retire;
    `previous` is each key's id before its last move, and `restorable` the merged ids a
    cluster without an id may take back."""
    shares: list[tuple[int, int, str]] = []  # (-members carrying id, cluster index, id)
    for index, members in enumerate(clusters):
        counts = Counter(current[m] for m in members if m in current)
        shares.extend((-n, index, golden_id) for golden_id, n in counts.items())
    shares.sort()
    chosen: dict[int, str] = {}
    taken: set[str] = set()
    best_home: dict[str, int] = {}  # id -> the cluster holding most of its members
    for _, index, golden_id in shares:
        best_home.setdefault(golden_id, index)
        if index not in chosen and golden_id not in taken:
            chosen[index] = golden_id
            taken.add(golden_id)
    restored: set[str] = set()
    if previous and restorable:
        claims: list[tuple[int, int, str]] = []
        for index, members in enumerate(clusters):
            if index in chosen:
                continue
            counts = Counter(previous[m] for m in members if previous.get(m) in restorable)
            claims.extend((-n, index, golden_id) for golden_id, n in counts.items())
        for _, index, golden_id in sorted(claims):
            if index not in chosen and golden_id not in taken:
                chosen[index] = golden_id
                taken.add(golden_id)
                restored.add(golden_id)
    missing = [i for i in range(len(clusters)) if i not in chosen]
    fresh = allocate(len(missing)) if missing else []
    chosen.update(zip(missing, fresh, strict=True))
    cluster_ids = [chosen[i] for i in range(len(clusters))]
    assignment = IdAssignment(cluster_ids, new_ids=set(fresh), restored=restored)
    for golden_id, index in best_home.items():
        if golden_id not in taken:
            assignment.merged[golden_id] = cluster_ids[index]
    for golden_id in (known_ids or set()) - taken - assignment.merged.keys():
        assignment.retired.add(golden_id)
    return assignment
