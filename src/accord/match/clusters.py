"""Turning links into clusters: a disjoint-set forest with path halving and union by size."""

from __future__ import annotations

from collections.abc import Iterable


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
