"""Turning links into clusters: a disjoint-set forest with path halving and union by size,
and clustering that will not chain contradicting records together."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt


class DisjointSet:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))
        self.size = [1] * size

    def find(self, item: int) -> int:
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return
        if self.size[root_a] < self.size[root_b]:
            root_a, root_b = root_b, root_a
        self.parent[root_b] = root_a
        self.size[root_a] += self.size[root_b]

    def same(self, a: int, b: int) -> bool:
        return self.find(a) == self.find(b)


def clusters(size: int, links: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The connected components of `size` items joined by `links`, each sorted, in order
    of their smallest member."""
    forest = DisjointSet(size)
    for a, b in links:
        forest.union(a, b)
    groups: dict[int, list[int]] = {}
    for item in range(size):
        groups.setdefault(forest.find(item), []).append(item)
    return sorted(groups.values(), key=lambda group: group[0])


# A column's values by record: a list, or a numpy object array.
ColumnValues = Sequence[str | None] | npt.NDArray[np.object_]
# A cluster's signature: per guarded column, each distinct value and one record holding it.
Signature = dict[str, dict[str, int]]
# Whether two records' values of a column contradict each other.
Contradicts = Callable[[str, int, int], bool]


class GuardedClusters:
    """Clustering that refuses a link which would put contradicting strong identifiers
    (two different tax ids, birth dates that are not a typo of each other, two records of
    a system that never holds a customer twice) into one cluster, however the cluster got
    there: the refused link is returned for review instead of chaining strangers together.

    Links are offered strongest first, so the best evidence shapes the clusters.
    """

    def __init__(
        self,
        size: int,
        values: Mapping[str, ColumnValues],
        contradicts: Contradicts,
        unique: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.forest = DisjointSet(size)
        self.values = values
        self.contradicts = contradicts
        # columns where any two different values contradict (the system, for one-per-system)
        self.unique = unique or {}
        self.signatures: dict[int, Signature] = {}

    def _signature(self, record: int) -> Signature:
        signature = self.signatures.get(record)
        if signature is None:
            signature = {}
            for column, values in self.values.items():
                value = values[record]
                if value is not None:
                    signature[column] = {value: record}
            self.signatures[record] = signature
        return signature

    def offer(self, left: int, right: int) -> str | None:
        """Join the clusters of `left` and `right`, unless that would contradict; returns
        None when joined (or already together), else the column that contradicts."""
        root_a, root_b = self.forest.find(left), self.forest.find(right)
        if root_a == root_b:
            return None
        sig_a, sig_b = self._signature(root_a), self._signature(root_b)
        for column, seen_a in sig_a.items():
            seen_b = sig_b.get(column)
            if seen_b is None:
                continue
            if column in self.unique:
                if any(v in self.unique[column] for v in seen_a.keys() & seen_b.keys()):
                    return column
                continue
            for value_a, record_a in seen_a.items():
                for value_b, record_b in seen_b.items():
                    if value_a != value_b and self.contradicts(column, record_a, record_b):
                        return column
        self._union(root_a, root_b)
        return None

    def join(self, left: int, right: int) -> None:
        """Join the two clusters whatever they hold (records already known to belong
        together)."""
        root_a, root_b = self.forest.find(left), self.forest.find(right)
        if root_a != root_b:
            self._union(root_a, root_b)

    def _union(self, root_a: int, root_b: int) -> None:
        sig_a, sig_b = self._signature(root_a), self._signature(root_b)
        self.forest.union(root_a, root_b)
        root = self.forest.find(root_a)
        merged, other = (sig_a, sig_b) if root == root_a else (sig_b, sig_a)
        for column, seen in other.items():
            target = merged.setdefault(column, {})
            for value, record in seen.items():
                target.setdefault(value, record)
        self.signatures[root] = merged
        self.signatures.pop(root_b if root == root_a else root_a, None)

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for item in range(len(self.forest.parent)):
            found.setdefault(self.forest.find(item), []).append(item)
        return sorted(found.values(), key=lambda group: group[0])


def component_labels(
    size: int, left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Per item, the smallest item of its connected component, for `size` items joined
    by the pairs (left[k], right[k]); vectorized: each round hooks every component root
    onto the smallest root it touches, then shortcuts paths until every item points at
    its root, so it takes a few rounds of whole-array operations, not a loop per pair."""
    parent = np.arange(size, dtype=np.int64)
    while True:
        a, b = parent[left], parent[right]
        differ = a != b
        if not differ.any():
            return parent
        low, high = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        np.minimum.at(parent, high, low)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def groups_of(labels: npt.NDArray[np.int64]) -> list[list[int]]:
    """Items grouped by label, each group sorted, groups in order of their first item."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    cuts = np.flatnonzero(np.diff(sorted_labels)) + 1
    groups = [part.tolist() for part in np.split(order, cuts)] if len(order) else []
    groups.sort(key=lambda group: group[0])
    return groups
