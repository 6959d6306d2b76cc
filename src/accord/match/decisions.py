"""Steward decisions over a matcher's links: whatever engine found the links, a pair a
steward called the same is linked, and a pair a steward called different never ends up in
one customer, however many other links would chain them together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from accord.match.clusters import DisjointSet
from accord.match.interface import Link

STEWARD_RULE = "steward"
HELD_APART = "a steward decided these are different customers"


@dataclass(frozen=True)
class Decision:
    left: int  # record indexes, as in links
    right: int
    same: bool


def apply_decisions(
    size: int, links: Sequence[Link], decisions: Sequence[Decision]
) -> tuple[list[Link], list[Link]]:
    """The links to cluster with (steward `same` links first, then the matcher's in its
    order) and the links held back because they would join records decided apart."""
    forest = DisjointSet(size)
    apart: dict[int, set[int]] = {}  # cluster root -> records that must stay out of it
    for decision in decisions:
        if not decision.same:
            apart.setdefault(decision.left, set()).add(decision.right)
            apart.setdefault(decision.right, set()).add(decision.left)

    def join(a: int, b: int) -> bool:
        root_a, root_b = forest.find(a), forest.find(b)
        if root_a == root_b:
            return True
        kept_out_a, kept_out_b = apart.get(root_a, set()), apart.get(root_b, set())
        if any(forest.find(r) == root_b for r in kept_out_a) or any(
            forest.find(r) == root_a for r in kept_out_b
        ):
            return False
        forest.union(root_a, root_b)
        root = forest.find(root_a)
        merged = kept_out_a | kept_out_b
        apart.pop(root_a, None)
        apart.pop(root_b, None)
        if merged:
            apart[root] = merged
        return True

    kept: list[Link] = []
    held: list[Link] = []
    for decision in decisions:
        if decision.same:
            link = Link(decision.left, decision.right, STEWARD_RULE, 1.0)
            if join(decision.left, decision.right):
                kept.append(link)
            else:  # two decisions contradict each other: the earlier `different` stands
                held.append(replace(link, reason=HELD_APART))
    for link in links:
        if join(link.left, link.right):
            kept.append(link)
        else:
            held.append(replace(link, reason=HELD_APART))
    return kept, held
