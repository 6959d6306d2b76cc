"""Clustering: plain connected components, and guarded clustering that will not put
contradicting values into one cluster however the links chain."""

from __future__ import annotations

from itertools import combinations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.match.clusters import (
    DisjointSet,
    GuardedClusters,
    clusters,
    component_labels,
    groups_of,
)


def test_clusters_are_connected_components_sorted_by_smallest_member() -> None:
    assert clusters(6, [(4, 5), (1, 4), (0, 2)]) == [[0, 2], [1, 4, 5], [3]]
    assert clusters(0, []) == []
    assert clusters(3, [(0, 0)]) == [[0], [1], [2]]


def test_disjoint_set() -> None:
    forest = DisjointSet(5)
    forest.union(0, 1)
    forest.union(3, 4)
    forest.union(1, 4)
    assert forest.same(0, 3) and not forest.same(0, 2)
    assert forest.size[forest.find(0)] == 4


def _differ(values: dict[str, list[str | None]]) -> GuardedClusters:
    return GuardedClusters(len(next(iter(values.values()))), values, lambda column, a, b: True)


def test_a_link_that_would_join_contradicting_values_is_refused() -> None:
    birth = ["1980-01-01", None, "1990-05-05", "1980-01-01"]
    guard = _differ({"birth_date": birth})
    assert guard.offer(0, 1) is None
    # record 1 has no birth date, but its cluster has record 0's
    assert guard.offer(1, 2) == "birth_date"
    assert guard.offer(3, 1) is None
    assert guard.groups() == [[0, 1, 3], [2]]


def test_joining_two_clusters_checks_every_value_of_both() -> None:
    tax = ["t1", None, None, "t2"]
    guard = _differ({"tax_id": tax})
    assert guard.offer(0, 1) is None
    assert guard.offer(2, 3) is None
    assert guard.offer(1, 2) == "tax_id"
    assert guard.groups() == [[0, 1], [2, 3]]


def test_a_link_within_a_cluster_is_accepted() -> None:
    guard = _differ({"x": ["a", None, None]})
    assert guard.offer(0, 1) is None
    assert guard.offer(1, 2) is None
    assert guard.offer(0, 2) is None
    assert guard.groups() == [[0, 1, 2]]


def test_a_typo_is_not_a_contradiction_when_the_test_says_so() -> None:
    values = {"birth_date": ["1980-01-01", "1980-01-02", "1999-09-09"]}

    def contradicts(column: str, a: int, b: int) -> bool:
        x, y = values[column][a], values[column][b]
        assert x is not None and y is not None and x != y
        return sum(p != q for p, q in zip(x, y, strict=True)) > 1

    guard = GuardedClusters(3, values, contradicts)
    assert guard.offer(0, 1) is None
    assert guard.offer(1, 2) == "birth_date"


def test_one_per_system_refuses_two_records_of_such_a_system() -> None:
    systems = ["crm", "erp", "crm", "web", "web"]
    guard = GuardedClusters(
        5, {"@system": systems}, lambda *_: False, {"@system": frozenset({"crm"})}
    )
    assert guard.offer(0, 1) is None
    assert guard.offer(1, 2) == "@system"  # would put crm 0 and crm 2 together
    assert guard.offer(3, 4) is None  # web may hold a customer twice
    assert guard.offer(1, 3) is None
    assert guard.groups() == [[0, 1, 3, 4], [2]]


values = st.lists(st.one_of(st.none(), st.sampled_from("abcde")), min_size=1, max_size=25)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    column_x=values,
    contradicting=st.sets(st.tuples(st.sampled_from("abcde"), st.sampled_from("abcde"))),
    unique=st.sets(st.sampled_from("abcde")),
)
def test_guarded_clusters_never_hold_contradicting_values(
    data: st.DataObject,
    column_x: list[str | None],
    contradicting: set[tuple[str, str]],
    unique: set[str],
) -> None:
    size = len(column_x)
    column_y = data.draw(
        st.lists(st.one_of(st.none(), st.sampled_from("abcde")), min_size=size, max_size=size)
    )
    links = data.draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, size - 1)), max_size=60)
    )
    table = {"x": column_x, "y": column_y}
    bad = {(a, b) for a, b in contradicting if a != b} | {
        (b, a) for a, b in contradicting if a != b
    }

    def contradicts(column: str, a: int, b: int) -> bool:
        return (table[column][a], table[column][b]) in bad

    guard = GuardedClusters(size, table, contradicts, {"y": frozenset(unique)})
    accepted = []
    for left, right in links:
        if guard.offer(left, right) is None:
            accepted.append((left, right))
    groups = guard.groups()

    assert sorted(r for group in groups for r in group) == list(range(size))
    assert groups == clusters(size, accepted)  # the accepted links make the clusters
    for group in groups:
        for a, b in combinations(group, 2):
            assert (column_x[a], column_x[b]) not in bad
            assert not (column_y[a] is not None and column_y[a] == column_y[b] in unique)
    # a refused link really would have contradicted
    for left, right in links:
        if (left, right) in accepted:
            continue
        joined = {r for g in groups if left in g or right in g for r in g}
        x = {column_x[r] for r in joined} - {None}
        y = [column_y[r] for r in joined if column_y[r] in unique]
        assert (
            any((p, q) in bad for p in x for q in x)
            or len(y) != len(set(y))
            or any(left in g and right in g for g in groups)
        )


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 40),
    edges=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=80),
)
def test_component_labels_and_groups_agree_with_a_disjoint_set(
    size: int, edges: list[tuple[int, int]]
) -> None:
    edges = [(a, b) for a, b in edges if a < size and b < size]
    left = np.array([a for a, _ in edges], dtype=np.int64)
    right = np.array([b for _, b in edges], dtype=np.int64)
    labels = component_labels(size, left, right)
    expected = clusters(size, edges)
    for group in expected:
        assert set(labels[group].tolist()) == {group[0]}  # the smallest member
    assert groups_of(labels) == expected


def test_component_labels_of_a_long_chain() -> None:
    # ids in an order that hooks one step at a time if done naively
    order = np.random.default_rng(3).permutation(5_000)
    labels = component_labels(5_000, order[:-1], order[1:])
    assert (labels == 0).all()


def test_groups_of_arbitrary_labels() -> None:
    assert groups_of(np.array([7, 3, 7, 3, 9], dtype=np.int64)) == [[0, 2], [1, 3], [4]]
    assert groups_of(np.zeros(0, dtype=np.int64)) == []
