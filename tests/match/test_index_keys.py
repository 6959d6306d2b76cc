"""The keys of the match index (`match/index.py`): the same for a record keyed alone (the
small-input path incremental matching takes) as within a batch of thousands (the numpy
path a full resolve takes), shared exactly when the full engine's blocking puts two
records in one block, never shared across rules, absent when a rule's column is, and
tied to the match settings that made them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.config.loader import load_project
from accord.config.matching import MatchConfig
from accord.match.blocking import rule_key
from accord.match.columns import Columns, root_column
from accord.match.index import (
    SMALL,
    IndexKeys,
    IndexPlan,
    _distinct_rows,
    _few_keys,
    _keys,
    entry_digest,
    index_keys,
    joined,
    settings_digest,
    text_key,
    total_key,
)
from accord.match.learned import record_columns

DEMO_PROJECT = Path(__file__).parent.parent.parent / "src" / "accord" / "demo" / "project"
CONFIG: MatchConfig = load_project(DEMO_PROJECT).config.match
PLAN = IndexPlan.of(CONFIG)

# Few distinct values, so that records share keys; some that derivations turn into
# nothing ("-" has no metaphone, "@x.de" no local part), and empties that count as absent.
POOL = {
    "kind": ["person", "organization", ""],
    "email": ["anna@example.de", "anna@web.de", "bob@example.de", "@x.de", "info@acme.de", ""],
    "phone": ["+4930123", "+4930999", ""],
    "tax_id": ["DE123", "DE999", ""],
    "given_name": ["anna", "annie", "bob", "-", "o'neil", ""],
    "family_name": ["schmidt", "schmitt", "meyer", "meier", "-", ""],
    "birth_date": ["1985-04-12", "1985-12-04", ""],
    "postcode": ["10115", "80331", ""],
    "organization_name": ["acme", "acme gmbh", "zeta", ""],
}
record_strategy = st.fixed_dictionaries(
    {},
    optional={
        # now and then any short text, spaces, separators and all
        column: st.sampled_from(values) | st.text(max_size=3)
        for column, values in POOL.items()
    },
)


def _alone(record: dict[str, str]) -> Columns:
    return record_columns([record])


def test_the_demo_plan_keys_every_blocking_rule_term_column_and_deterministic_rule() -> None:
    names = [name for name, _ in PLAN.blocks]
    assert names[: len(CONFIG.model.blocking)] == [  # type: ignore[union-attr]
        "block:" + "+".join(rule)
        for rule in CONFIG.model.blocking  # type: ignore[union-attr]
    ]
    assert ("rule:same_tax_id", ("tax_id", "kind")) in PLAN.blocks  # the rule's kind is a key
    assert PLAN.terms == (
        "email",
        "employer",
        "family_name",
        "given_name",
        "organization_name",
        "phone",
    )
    assert PLAN.settings == settings_digest(CONFIG)
    assert {"kind", "email~local", "family_name~metaphone"} <= PLAN.columns


@settings(max_examples=15, deadline=None)
@given(st.lists(record_strategy, min_size=SMALL + 1, max_size=SMALL + 30))
def test_a_record_has_the_same_keys_alone_as_among_many(records: list[dict[str, str]]) -> None:
    many = record_columns(records)
    batch = index_keys(PLAN, many)
    for (name, refs), (keys, present) in zip(PLAN.blocks, batch.blocks, strict=True):
        # the two paths, side by side on the same columns
        few_keys, few_present = _few_keys(name, many, refs)
        assert present.tolist() == few_present.tolist(), name
        assert keys[present].tolist() == few_keys[few_present].tolist(), name
        assert _keys(name, many, refs)[0].tolist() == keys.tolist()
    keyed_alone: dict[tuple[tuple[str, str], ...], IndexKeys] = {}
    for i, record in enumerate(records):
        signature = tuple(sorted(record.items()))
        if signature not in keyed_alone:
            keyed_alone[signature] = index_keys(PLAN, _alone(record))
        alone = keyed_alone[signature]
        for (name, _), (keys, present), (one, one_present) in zip(
            PLAN.blocks, batch.blocks, alone.blocks, strict=True
        ):
            assert bool(present[i]) == bool(one_present[0]), (name, record)
            if present[i]:
                assert int(keys[i]) == int(one[0]), (name, record)
        assert batch.counted_keys(i) == alone.counted_keys(0), record
        assert batch.block_keys(i) == alone.block_keys(0), record


@settings(max_examples=30, deadline=None)
@given(st.lists(record_strategy, min_size=1, max_size=SMALL + 20), st.data())
def test_keys_of_many_records_at_once_are_those_of_each_record(
    records: list[dict[str, str]], data: st.DataObject
) -> None:
    # what a full resolve writes (block_pairs, counts) is what incremental matching
    # writes record by record (block_keys, counted_keys), for any subset of the records
    keys = index_keys(PLAN, record_columns(records))
    chosen = data.draw(st.lists(st.integers(0, len(records) - 1), unique=True))
    positions = np.array(chosen, dtype=np.int64)
    block, owners = keys.block_pairs(positions)
    assert sorted(zip(block.tolist(), owners.tolist(), strict=True)) == sorted(
        (key, n) for n, i in enumerate(chosen) for key in keys.block_keys(i)
    )
    found, counts = keys.counts(positions)
    expected: dict[int, int] = {}
    for i in chosen:
        for key in keys.counted_keys(i):
            expected[key] = expected.get(key, 0) + 1
    assert dict(zip(found.tolist(), counts.tolist(), strict=True)) == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(record_strategy, min_size=2, max_size=SMALL + 20))
def test_records_share_a_block_key_exactly_when_the_blocking_puts_them_together(
    records: list[dict[str, str]],
) -> None:
    columns = record_columns(records)
    keys = index_keys(PLAN, columns)
    upper = np.triu(np.ones((len(records), len(records)), dtype=bool), 1)
    for (name, refs), (key, present) in zip(PLAN.blocks, keys.blocks, strict=True):
        blocked = rule_key(columns, refs)
        assert (blocked >= 0).tolist() == present.tolist(), name
        together = (blocked[:, None] == blocked[None, :]) & (blocked[:, None] >= 0)
        shared = (key[:, None] == key[None, :]) & present[:, None] & present[None, :]
        assert (together & upper).tolist() == (shared & upper).tolist(), name


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_keys_of_different_rules_never_collide_for_the_same_values(a: str, b: str) -> None:
    # two model rules, a deterministic rule and term columns over the very same columns
    plan = IndexPlan(
        blocks=(
            ("block:email", ("email",)),
            ("block:phone", ("phone",)),
            ("rule:email", ("email",)),
            ("block:email+phone", ("email", "phone")),
            ("block:phone+email", ("phone", "email")),
        ),
        terms=("email", "phone"),
        settings="s",
    )
    for email, phone in [(a, a), (a, b), (b, a)]:
        keys = index_keys(plan, Columns({"email": [email], "phone": [phone]}, 1))
        counted = keys.counted_keys(0)
        assert len(keys.block_keys(0)) == 5
        assert len(counted) == len(set(counted)) == 5 + 2 * 2  # 5 blocks, 2 terms, 2 totals
    assert total_key("email") != total_key("phone")
    assert text_key(a) == text_key(a)


@settings(max_examples=60, deadline=None)
@given(record_strategy)
def test_a_record_counts_each_of_its_keys_once(record: dict[str, str]) -> None:
    # the index adds one to a key's count per key listed, and removes one per distinct
    # key: a key listed twice for one record would leave its count wrong
    counted = index_keys(PLAN, _alone(record)).counted_keys(0)
    assert len(counted) == len(set(counted))


@pytest.mark.parametrize(("name", "refs"), PLAN.blocks, ids=[name for name, _ in PLAN.blocks])
def test_a_record_missing_any_column_of_a_rule_has_no_key_for_it(
    name: str, refs: tuple[str, ...]
) -> None:
    full = {
        "kind": "person" if "organization" not in name else "organization",
        "email": "anna.schmidt@example.de",
        "phone": "+493012345",
        "tax_id": "DE123456789",
        "given_name": "anna",
        "family_name": "schmidt",
        "birth_date": "1985-04-12",
        "postcode": "10115",
        "organization_name": "acme",
        "employer": "acme",
    }
    position = [n for n, _ in PLAN.blocks].index(name)
    keys = index_keys(PLAN, _alone(full))
    assert keys.blocks[position][1][0]  # with every column, the rule has a key
    own = int(keys.blocks[position][0][0])
    for column in {root_column(ref) for ref in refs}:
        for missing in ({k: v for k, v in full.items() if k != column}, full | {column: ""}):
            without = index_keys(PLAN, _alone(missing))
            assert not without.blocks[position][1][0], (name, column)
            assert own not in without.block_keys(0)
            # and the same within a batch (the numpy path)
            batch = index_keys(PLAN, record_columns([full] * SMALL + [missing]))
            assert not batch.blocks[position][1][SMALL], (name, column)
            assert batch.blocks[position][1][0]


def test_a_derived_value_that_is_nothing_is_no_key() -> None:
    # "-" has no metaphone: the rule [kind, family_name~metaphone, birth_date] has no key
    rule = "block:kind+family_name~metaphone+birth_date"
    position = [n for n, _ in PLAN.blocks].index(rule)
    record = {"kind": "person", "family_name": "-", "birth_date": "1985-04-12"}
    assert not index_keys(PLAN, _alone(record)).blocks[position][1][0]
    batch = index_keys(PLAN, record_columns([record] * (SMALL + 1)))
    assert not batch.blocks[position][1].any()


def test_term_keys_are_per_column_and_value() -> None:
    records = [
        {"given_name": "anna", "family_name": "anna"},
        {"given_name": "anna"},
        {"family_name": "anna"},
    ]
    keys = index_keys(PLAN, record_columns(records), blocks=False)
    assert keys.blocks == []
    given_at = PLAN.terms.index("given_name")
    family_at = PLAN.terms.index("family_name")
    given, given_present = keys.terms[given_at]
    family, family_present = keys.terms[family_at]
    assert given_present.tolist() == [True, True, False]
    assert family_present.tolist() == [True, False, True]
    assert given[0] == given[1]
    assert family[0] == family[2]
    assert given[0] != family[0]  # the same value in two columns: two keys
    assert keys.totals[given_at] == total_key("given_name")
    assert total_key("given_name") in keys.counted_keys(1)
    assert total_key("family_name") not in keys.counted_keys(1)


def test_entry_digest_changes_with_the_settings_and_the_features() -> None:
    features = {"given_name": "anna", "family_name": "schmidt", "kind": "person"}
    assert entry_digest(PLAN, features) == entry_digest(PLAN, dict(reversed(features.items())))
    assert entry_digest(PLAN, features) != entry_digest(PLAN, features | {"given_name": "anne"})
    assert entry_digest(PLAN, features) != entry_digest(PLAN, features | {"email": "a@b.de"})

    model = CONFIG.model
    assert model is not None
    changed = [
        CONFIG.model_copy(update={"max_block_size": CONFIG.max_block_size + 1}),
        CONFIG.model_copy(
            update={
                "model": model.model_copy(
                    update={"thresholds": model.thresholds.model_copy(update={"link": 0.9})}
                )
            }
        ),
        CONFIG.model_copy(update={"conflicts": ["birth_date"]}),
    ]
    digests = {entry_digest(IndexPlan.of(config), features) for config in changed}
    assert entry_digest(PLAN, features) not in digests
    assert len(digests) == len(changed)
    assert IndexPlan.of(CONFIG.model_copy()).settings == PLAN.settings  # same settings, same


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_distinct_combinations_are_found_with_folded_codes_and_without(
    rows: list[tuple[int, int]],
) -> None:
    # codes too large to fold into one integer take numpy's row comparison instead
    small = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(2)]
    large = [small[0] * 2**40, small[1] * 2**40]
    for codes in (small, large):
        first, inverse = _distinct_rows(codes)
        combinations = [tuple(int(c[i]) for c in codes) for i in range(len(rows))]
        assert len(first) == len(set(combinations))
        for row, combination in enumerate(combinations):
            held = first[inverse[row]]
            assert combinations[held] == combination
            assert held == combinations.index(combination)  # the first row holding it


@settings(max_examples=20, deadline=None)
@given(st.lists(record_strategy, min_size=1, max_size=SMALL + 40), st.data())
def test_the_keys_of_parts_joined_are_the_keys_of_the_whole(
    records: list[dict[str, str]], data: st.DataObject
) -> None:
    """What a full resolve's process beside works out a part at a time
    (`golden.parallel.KeysBeside`), joined, is what the whole would have."""
    cuts = sorted(data.draw(st.sets(st.integers(1, len(records)), max_size=4)) | {len(records)})
    parts, start = [], 0
    for end in cuts:
        parts.append(index_keys(PLAN, record_columns(records[start:end])))
        start = end
    whole, together = index_keys(PLAN, record_columns(records)), joined(parts)
    assert together.totals == whole.totals
    for (keys, present), (one_keys, one_present) in zip(
        [*together.blocks, *together.terms], [*whole.blocks, *whole.terms], strict=True
    ):
        assert present.tolist() == one_present.tolist()
        assert keys[present].tolist() == one_keys[one_present].tolist()
    for i in range(len(records)):
        assert together.counted_keys(i) == whole.counted_keys(i)
