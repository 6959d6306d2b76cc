"""Blocking: exactly the pairs some rule's equal, present key allows, each once, never
from an oversized block; checked against a brute-force reference."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.match.blocking import block, pairs_within, rule_key
from accord.match.columns import Columns
from accord.match.interface import OversizedBlock

VALUES = [None, "x", "y", "z", "xy", "yx"]
REFS = ["a", "b", "c", "a~prefix1", "b~last1"]


def _derived(columns: Columns, ref: str, record: int) -> str | None:
    value = columns.values(ref)[record]
    return None if value is None else str(value)


def _reference(
    columns: Columns,
    rules: list[list[str]],
    max_block_size: int,
    sources: list[int] | None,
    link_type: str,
) -> tuple[dict[tuple[int, int], int], list[tuple[str, str, int]]]:
    """Every allowed pair i < j and the first rule that pairs it, by brute force; and
    the oversized blocks."""
    n = len(columns)

    def key(rule: list[str], record: int) -> tuple[str, ...] | None:
        values = [_derived(columns, ref, record) for ref in rule]
        return None if any(v is None for v in values) else tuple(v for v in values if v)

    oversized = []
    usable: list[set[tuple[str, ...]]] = []
    for rule in rules:
        sizes: dict[tuple[str, ...], int] = {}
        first_of: dict[tuple[str, ...], int] = {}
        for record in range(n):
            k = key(rule, record)
            if k is not None:
                sizes[k] = sizes.get(k, 0) + 1
                first_of.setdefault(k, record)
        usable.append({k for k, size in sizes.items() if size <= max_block_size})
        oversized += [
            ("+".join(rule), "|".join(k)[:80], size)
            for k, size in sizes.items()
            if size > max_block_size
        ]
    pairs = {}
    for i, j in combinations(range(n), 2):
        if sources is not None and link_type == "link_only" and sources[i] == sources[j]:
            continue
        if sources is not None and link_type == "dedupe_only" and sources[i] != sources[j]:
            continue
        for index, rule in enumerate(rules):
            ki, kj = key(rule, i), key(rule, j)
            if ki is not None and ki == kj and ki in usable[index]:
                pairs[i, j] = index
                break
    return pairs, oversized


records = st.integers(0, 24).flatmap(
    lambda n: st.fixed_dictionaries(
        {name: st.lists(st.sampled_from(VALUES), min_size=n, max_size=n) for name in "abc"}
    )
)


@settings(max_examples=300, deadline=None)
@given(
    data=records,
    rules=st.lists(st.lists(st.sampled_from(REFS), min_size=1, max_size=3), min_size=1, max_size=4),
    max_block_size=st.integers(2, 7),
    link_type=st.sampled_from(["dedupe_and_link", "link_only", "dedupe_only"]),
    source_seed=st.one_of(st.none(), st.integers(0, 2**16)),
)
def test_blocking_equals_brute_force(
    data: dict[str, list[str | None]],
    rules: list[list[str]],
    max_block_size: int,
    link_type: str,
    source_seed: int | None,
) -> None:
    n = len(data["a"])
    columns = Columns(data, n)
    sources = (
        None
        if source_seed is None
        else np.random.default_rng(source_seed).integers(0, 2, n).astype(np.int64)
    )
    blocked = block(columns, rules, max_block_size, sources, link_type)
    expected, oversized = _reference(
        columns, rules, max_block_size, None if sources is None else sources.tolist(), link_type
    )

    got = list(zip(blocked.left.tolist(), blocked.right.tolist(), strict=True))
    assert all(left < right for left, right in got)
    assert len(got) == len(set(got)), "a pair is produced twice"
    assert dict(zip(got, blocked.rule.tolist(), strict=True)) == expected
    assert sorted((b.rule, b.key, b.size) for b in blocked.oversized) == sorted(oversized)
    assert [r.new_pairs for r in blocked.reports] == [
        sum(1 for label in expected.values() if label == index) for index in range(len(rules))
    ]
    assert sum(r.new_pairs for r in blocked.reports) == len(blocked)
    assert len(blocked.keys) == len(rules)


def test_multi_column_rule_needs_every_column_equal_and_present() -> None:
    columns = Columns(
        {
            "family": ["smith", "smith", "smith", "smith", None, "jones"],
            "city": ["berlin", "berlin", "paris", None, "berlin", "berlin"],
        },
        6,
    )
    blocked = block(columns, [["family", "city"]], 10)
    assert list(zip(blocked.left.tolist(), blocked.right.tolist(), strict=True)) == [(0, 1)]


def test_rule_key_does_not_confuse_different_combinations() -> None:
    # (1, 12) and (11, 2) would collide under naive string concatenation
    columns = Columns({"a": ["1", "11", "1"], "b": ["12", "2", "12"]}, 3)
    key = rule_key(columns, ["a", "b"])
    assert key[0] == key[2] != key[1]


def test_null_never_blocks() -> None:
    columns = Columns({"email": [None, None, "", "", "a@x", None]}, 6)
    blocked = block(columns, [["email"]], 100)
    assert len(blocked) == 0
    assert blocked.reports[0].pairs == 0
    assert blocked.reports[0].blocks == 0


def test_derived_columns_block() -> None:
    columns = Columns({"given": ["Bill", "William", "Bob", "Robert", "Anna"]}, 5)
    blocked = block(columns, [["given~root"]], 10)
    assert sorted(zip(blocked.left.tolist(), blocked.right.tolist(), strict=True)) == [
        (0, 1),
        (2, 3),
    ]


def test_oversized_block_is_reported_skipped_and_does_not_hide_later_rules() -> None:
    # everyone is called N/A; records 0 and 1 also share an email
    family = ["N/A"] * 6 + ["smith", "smith"]
    email = ["a@x", "a@x", "b@x", None, None, None, None, None]
    columns = Columns({"family": family, "email": email}, 8)
    blocked = block(columns, [["family"], ["email"]], max_block_size=5)

    assert blocked.oversized == [OversizedBlock("family", "N/A", 6)]
    pairs = dict(
        zip(
            zip(blocked.left.tolist(), blocked.right.tolist(), strict=True),
            blocked.rule.tolist(),
            strict=True,
        )
    )
    # (6, 7) from the family rule; (0, 1) from the email rule, not suppressed by the
    # skipped N/A block of the earlier rule
    assert pairs == {(6, 7): 0, (0, 1): 1}
    family_report, email_report = blocked.reports
    assert (family_report.pairs, family_report.new_pairs, family_report.blocks) == (1, 1, 1)
    assert family_report.largest_block == 2
    assert (email_report.pairs, email_report.new_pairs, email_report.blocks) == (1, 1, 1)


def test_a_block_of_exactly_the_cap_is_used() -> None:
    columns = Columns({"k": ["v"] * 4}, 4)
    assert len(block(columns, [["k"]], max_block_size=4)) == 6
    capped = block(columns, [["k"]], max_block_size=3)
    assert len(capped) == 0
    assert capped.oversized == [OversizedBlock("k", "v", 4)]


def test_oversized_key_description_is_truncated() -> None:
    columns = Columns({"k": ["v" * 200] * 3}, 3)
    blocked = block(columns, [["k"]], max_block_size=2)
    assert len(blocked.oversized[0].key) == 80


def test_report_counts_pairs_new_pairs_blocks_and_largest_block() -> None:
    columns = Columns(
        {
            "email": ["e1", "e1", "e1", "e2", "e2", None, "e3"],
            "phone": ["p1", "p1", None, "p2", "p2", "p2", "p3"],
        },
        7,
    )
    blocked = block(columns, [["email"], ["phone"]], 10)
    email, phone = blocked.reports
    assert (email.rule, email.pairs, email.new_pairs, email.blocks, email.largest_block) == (
        "email",
        4,  # (0,1) (0,2) (1,2) (3,4)
        4,
        2,
        3,
    )
    assert (phone.rule, phone.pairs, phone.new_pairs, phone.blocks, phone.largest_block) == (
        "phone",
        4,  # (0,1) (3,4) (3,5) (4,5)
        2,  # (3,5) (4,5): the others the email rule found
        2,
        3,
    )
    assert len(blocked) == 6
    assert sorted(blocked.rule.tolist()) == [0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize(
    ("link_type", "expected"),
    [
        ("dedupe_and_link", {(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)}),
        ("link_only", {(0, 2), (0, 3), (1, 2), (1, 3)}),
        ("dedupe_only", {(0, 1), (2, 3)}),
    ],
)
def test_link_type_with_sources(link_type: str, expected: set[tuple[int, int]]) -> None:
    columns = Columns({"k": ["v"] * 4}, 4)
    sources = np.array([0, 0, 1, 1], dtype=np.int64)
    blocked = block(columns, [["k"]], 10, sources, link_type)
    assert set(zip(blocked.left.tolist(), blocked.right.tolist(), strict=True)) == expected
    assert blocked.reports[0].pairs == len(expected)


def test_link_type_without_sources_compares_everything() -> None:
    columns = Columns({"k": ["v"] * 3}, 3)
    assert len(block(columns, [["k"]], 10, None, "link_only")) == 3


def test_no_records() -> None:
    blocked = block(Columns({"k": []}, 0), [["k"], ["k~prefix1"]], 10)
    assert len(blocked) == 0
    assert [r.pairs for r in blocked.reports] == [0, 0]
    assert blocked.oversized == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-1, 4), st.integers(0, 50)), max_size=30, unique_by=lambda x: x[1]
    )
)
def test_pairs_within_groups(entries: list[tuple[int, int]]) -> None:
    groups = np.array([g for g, _ in entries], dtype=np.int64)
    records = np.array([r for _, r in entries], dtype=np.int64)
    left, right = pairs_within(groups, records)
    got = sorted(tuple(sorted(pair)) for pair in zip(left.tolist(), right.tolist(), strict=True))
    expected = sorted(
        tuple(sorted((a[1], b[1]))) for a, b in combinations(entries, 2) if a[0] == b[0]
    )
    assert got == expected
