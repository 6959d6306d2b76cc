"""Steward decisions over a matcher's links: `same` links come first, `different` pairs
never share a component however the links chain, and what is held back says why."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.match.decisions import HELD_APART, STEWARD_RULE, Decision, apply_decisions
from accord.match.interface import Link


def _components(size: int, links: Sequence[Link]) -> list[int]:
    """Brute force: the component label of every item, by repeated relabelling."""
    label = list(range(size))
    changed = True
    while changed:
        changed = False
        for link in links:
            low = min(label[link.left], label[link.right])
            for end in (link.left, link.right):
                if label[end] != low:
                    label[end] = low
                    changed = True
    return label


def _violates(size: int, links: Sequence[Link], different: Sequence[tuple[int, int]]) -> bool:
    label = _components(size, links)
    return any(label[a] == label[b] for a, b in different)


def _expected(
    size: int, links: Sequence[Link], decisions: Sequence[Decision]
) -> tuple[list[Link], list[Link]]:
    """The specification, computed the slow way: offer steward `same` links in decision
    order, then the matcher's links in their order; keep a link unless the components it
    would produce put a `different` pair together."""
    different = [(d.left, d.right) for d in decisions if not d.same]
    offered = [Link(d.left, d.right, STEWARD_RULE, 1.0) for d in decisions if d.same]
    kept: list[Link] = []
    held: list[Link] = []
    for link in [*offered, *links]:
        if _violates(size, [*kept, link], different):
            held.append(Link(link.left, link.right, link.rule, link.score, link.weight, HELD_APART))
        else:
            kept.append(link)
    return kept, held


def test_no_links_no_decisions() -> None:
    assert apply_decisions(0, [], []) == ([], [])
    assert apply_decisions(3, [], []) == ([], [])


def test_without_decisions_every_link_is_kept_in_order() -> None:
    links = [Link(0, 1, "email"), Link(2, 3, "model", 0.97, 5.1), Link(1, 2, "phone")]
    assert apply_decisions(4, links, []) == (links, [])


def test_same_links_come_first_with_the_steward_rule() -> None:
    links = [Link(0, 1, "email_and_name")]
    kept, held = apply_decisions(5, links, [Decision(3, 4, same=True), Decision(2, 4, True)])
    assert kept == [
        Link(3, 4, STEWARD_RULE, 1.0),
        Link(2, 4, STEWARD_RULE, 1.0),
        Link(0, 1, "email_and_name"),
    ]
    assert held == []
    assert STEWARD_RULE == "steward"


def test_a_direct_link_between_records_decided_different_is_held_with_the_reason() -> None:
    link = Link(0, 1, "model", 0.93, 3.8, explanation={"match_weight": 3.8})
    kept, held = apply_decisions(2, [link], [Decision(0, 1, same=False)])
    assert kept == []
    assert len(held) == 1
    assert held[0].reason == HELD_APART
    assert "steward" in held[0].reason
    # everything else about the matcher's evidence is kept for the reviewer
    assert (held[0].left, held[0].right, held[0].rule, held[0].score, held[0].weight) == (
        0,
        1,
        "model",
        0.93,
        3.8,
    )
    assert held[0].explanation == {"match_weight": 3.8}


def test_a_chain_of_links_cannot_join_records_decided_different() -> None:
    links = [Link(0, 1, "email"), Link(1, 2, "phone"), Link(2, 3, "address")]
    kept, held = apply_decisions(4, links, [Decision(0, 3, same=False)])
    assert kept == links[:2]
    assert held == [Link(2, 3, "address", reason=HELD_APART)]


def test_the_decision_is_symmetric() -> None:
    links = [Link(1, 0, "email")]
    assert apply_decisions(2, links, [Decision(0, 1, same=False)])[0] == []
    assert apply_decisions(2, links, [Decision(1, 0, same=False)])[0] == []


def test_joining_two_clusters_checks_every_different_decision_of_both() -> None:
    # {0, 1} and {2, 3} are built first; 1 and 2 are fine together, but 0 and 3 are not
    links = [Link(0, 1, "a"), Link(2, 3, "b"), Link(1, 2, "c")]
    kept, held = apply_decisions(4, links, [Decision(3, 0, same=False)])
    assert kept == links[:2]
    assert held == [Link(1, 2, "c", reason=HELD_APART)]


def test_different_decisions_follow_records_through_several_merges() -> None:
    # 0 must stay away from 5; 5 reaches 0's cluster only after four other merges
    links = [Link(0, 1, "a"), Link(2, 3, "a"), Link(1, 2, "a"), Link(4, 5, "a"), Link(3, 4, "a")]
    kept, held = apply_decisions(6, links, [Decision(0, 5, same=False)])
    assert kept == links[:4]
    assert held == [Link(3, 4, "a", reason=HELD_APART)]


def test_a_same_decision_that_contradicts_a_different_one_is_held() -> None:
    decisions = [Decision(0, 2, same=False), Decision(0, 1, True), Decision(1, 2, True)]
    kept, held = apply_decisions(3, [], decisions)
    assert kept == [Link(0, 1, STEWARD_RULE, 1.0)]
    assert held == [Link(1, 2, STEWARD_RULE, 1.0, reason=HELD_APART)]


def test_a_different_decision_listed_after_a_same_one_still_stands() -> None:
    decisions = [Decision(0, 1, True), Decision(1, 2, True), Decision(0, 2, same=False)]
    kept, held = apply_decisions(3, [], decisions)
    assert kept == [Link(0, 1, STEWARD_RULE, 1.0)]
    assert held == [Link(1, 2, STEWARD_RULE, 1.0, reason=HELD_APART)]


def test_steward_same_links_shape_the_clusters_before_the_matcher() -> None:
    # the matcher would put 0 with 1 first; the steward's 1 = 2 is offered before it,
    # so 0 - 1 is the link that would bring 0 and 2 together
    links = [Link(0, 1, "email")]
    kept, held = apply_decisions(3, links, [Decision(0, 2, False), Decision(1, 2, True)])
    assert kept == [Link(1, 2, STEWARD_RULE, 1.0)]
    assert held == [Link(0, 1, "email", reason=HELD_APART)]


def test_links_inside_a_cluster_are_kept() -> None:
    links = [Link(0, 1, "a"), Link(1, 2, "a"), Link(0, 2, "b")]
    kept, held = apply_decisions(4, links, [Decision(0, 3, same=False)])
    assert kept == links
    assert held == []


def test_records_decided_different_from_one_record_may_still_join_each_other() -> None:
    links = [Link(1, 2, "a"), Link(0, 1, "a")]
    kept, held = apply_decisions(3, links, [Decision(0, 1, False), Decision(0, 2, False)])
    assert kept == [Link(1, 2, "a")]
    assert held == [Link(0, 1, "a", reason=HELD_APART)]


@st.composite
def _scenarios(draw: st.DrawFn) -> tuple[int, list[Link], list[Decision]]:
    size = draw(st.integers(1, 9))
    index = st.integers(0, size - 1)
    links = [
        Link(a, b, draw(st.sampled_from(["email", "phone", "model"])))
        for a, b in draw(st.lists(st.tuples(index, index), max_size=25))
    ]
    pairs = list(combinations(range(size), 2))
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=12)) if pairs else []
    decisions = [
        Decision(*(pair if draw(st.booleans()) else pair[::-1]), same=draw(st.booleans()))
        for pair in chosen
    ]
    return size, links, decisions


@settings(max_examples=400)
@given(scenario=_scenarios())
def test_decisions_hold_however_random_links_chain(
    scenario: tuple[int, list[Link], list[Decision]],
) -> None:
    size, links, decisions = scenario
    kept, held = apply_decisions(size, links, decisions)

    assert (kept, held) == _expected(size, links, decisions)

    label = _components(size, kept)
    for decision in decisions:
        together = label[decision.left] == label[decision.right]
        if not decision.same:
            assert not together, decision
        else:  # the same customer, unless that contradicts a `different` decision
            steward_link = Link(decision.left, decision.right, STEWARD_RULE, 1.0)
            assert together or steward_link in [
                Link(h.left, h.right, h.rule, h.score) for h in held
            ]
    # nothing is lost: every offered link is kept or held, once
    assert len(kept) + len(held) == len(links) + sum(d.same for d in decisions)
    assert all(h.reason == HELD_APART for h in held)
    # a held link really would join records decided different
    different = [(d.left, d.right) for d in decisions if not d.same]
    for link in held:
        assert _violates(size, [*kept, link], different)
    # steward links come first, then the matcher's in their own order
    rules = [link.rule for link in kept]
    assert rules == sorted(rules, key=lambda rule: rule != STEWARD_RULE)
    assert [link for link in kept if link.rule != STEWARD_RULE] == [
        link for link in links if link in kept
    ]
