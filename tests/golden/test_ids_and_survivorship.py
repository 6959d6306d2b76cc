"""Persistent golden ids and survivorship, as pure functions, with properties."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from accord.config.models import SurvivorshipConfig, SystemConfig
from accord.golden.ids import assign_ids
from accord.golden.survivorship import Member, Survivorship


def _allocator() -> tuple[list[str], object]:
    counter = itertools.count(1)
    issued: list[str] = []

    def allocate(n: int) -> list[str]:
        fresh = [f"N{next(counter)}" for _ in range(n)]
        issued.extend(fresh)
        return fresh

    return issued, allocate


partitions = st.lists(st.integers(0, 5), min_size=1, max_size=30).map(
    lambda labels: [
        [i for i, label in enumerate(labels) if label == group] for group in sorted(set(labels))
    ]
)


@given(before=partitions, after=partitions)
def test_ids_are_unique_and_unchanged_clusters_keep_theirs(
    before: list[list[int]], after: list[list[int]]
) -> None:
    _, allocate = _allocator()
    first = assign_ids(before, {}, allocate)  # type: ignore[arg-type]
    current = {
        m: gid for cluster, gid in zip(before, first.cluster_ids, strict=True) for m in cluster
    }
    second = assign_ids(after, current, allocate, known_ids=set(first.cluster_ids))  # type: ignore[arg-type]

    assert len(set(second.cluster_ids)) == len(after)
    for cluster, gid in zip(after, second.cluster_ids, strict=True):
        if cluster in before:  # the same members as before: the same id
            assert gid == first.cluster_ids[before.index(cluster)]
    kept = set(second.cluster_ids)
    assert kept.isdisjoint(second.merged) and kept.isdisjoint(second.retired)
    assert set(first.cluster_ids) <= kept | set(second.merged) | second.retired


def test_a_merge_keeps_the_id_most_members_carry_and_redirects_the_other() -> None:
    _, allocate = _allocator()
    result = assign_ids(
        [["a", "b", "c"]],
        {"a": "G1", "b": "G1", "c": "G2"},
        allocate,  # type: ignore[arg-type]
        known_ids={"G1", "G2"},
    )
    assert result.cluster_ids == ["G1"]
    assert result.merged == {"G2": "G1"}
    assert not result.new_ids


def test_a_split_keeps_the_id_with_the_larger_part() -> None:
    issued, allocate = _allocator()
    result = assign_ids(
        [["a"], ["b", "c"]],
        {"a": "G1", "b": "G1", "c": "G1"},
        allocate,  # type: ignore[arg-type]
        known_ids={"G1"},
    )
    assert result.cluster_ids == [issued[0], "G1"]
    assert result.new_ids == set(issued)


def _member(system: str, source_id: str, when: str, **data: str) -> Member:
    return Member(
        system,
        source_id,
        1,
        1,
        f"{system}@v1",
        dict(data) | {"kind": "person"},
        datetime.fromisoformat(when).replace(tzinfo=UTC),
    )


SYSTEMS = {
    name: SystemConfig(kind="crm", owner="x", authority=["email"] if name == "billing" else [])
    for name in ("crm", "erp", "billing")
}
RULES = Survivorship(SurvivorshipConfig(default_priority=["erp", "crm"]), SYSTEMS)


def test_priority_then_recency_then_authority() -> None:
    members = [
        _member("crm", "1", "2024-01-01", city="Old", email="a@x.org"),
        _member("crm", "2", "2024-06-01", city="New"),
        _member("erp", "9", "2020-01-01", given_name="Anna"),
        _member("billing", "5", "2019-01-01", email="b@x.org", city="Billing City"),
    ]
    data, lineage = RULES.build(members)
    assert data["city"] == "New"  # crm outranks billing (unlisted); newest crm wins
    assert lineage["city"]["rule"] == "most_recent"
    assert data["email"] == "b@x.org"  # billing is the authority for email
    assert lineage["email"]["rule"] == "source_priority"
    assert lineage["email"]["alternatives"] == [
        {"value": "a@x.org", "system": "crm", "source_id": "1"}
    ]
    assert lineage["given_name"]["rule"] == "only_value"


@given(seed=st.integers(0, 10_000))
def test_the_outcome_never_depends_on_member_order(seed: int) -> None:
    members = [
        _member("crm", str(i), f"2024-01-0{1 + i % 3}", city=f"C{i % 4}", email=f"e{i % 2}@x")
        for i in range(8)
    ]
    shuffled = members[:]
    random.Random(seed).shuffle(shuffled)
    assert RULES.build(shuffled) == RULES.build(members)
