"""The match index in the store (`store/match_index.py`, kept current by
`golden/match_index.py::sync_index`), the same on SQLite and PostgreSQL: what is written
reads back, entries of records that are gone leave with their keys and counts, counts
never go negative and leave no zero rows, a re-sync writes nothing, and whatever the
sequence of changes, the keys and counts equal a recount from scratch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, select

from accord.config.loader import load_project
from accord.golden.match_index import IndexChange, sync_index
from accord.match.index import SMALL, IndexPlan, entry_digest, index_keys, total_key
from accord.match.learned import record_columns
from accord.store import golden as golden_store
from accord.store import match_index as store
from accord.store import stewardship
from accord.store.engine import writing
from accord.store.records import LOOKUP_CHUNK
from accord.store.tables import crosswalk, golden_record, match_count, match_entry, match_key
from tests.plans import query_plans

DEMO_PROJECT = Path(__file__).parent.parent.parent / "src" / "accord" / "demo" / "project"
PLAN = IndexPlan.of(load_project(DEMO_PROJECT).config.match)
Key = tuple[str, str]
Record = tuple[Key, int, dict[str, str]]


def person(given: str, family: str, **values: str) -> dict[str, str]:
    """Match features of a person, as a full resolve indexes them."""
    return {"kind": "person", "given_name": given, "family_name": family} | values


ANNA = person("anna", "schmidt", email="anna@example.de", phone="+4930111", postcode="10115")
ANNE = person("anne", "schmidt", email="anna@example.de", phone="+4930222", postcode="10115")
BOB = person("bob", "meyer", email="bob@example.de", birth_date="1970-01-01")


def _sync(engine: Engine, records: Sequence[Record], *, complete: bool) -> IndexChange:
    with writing(engine) as conn:
        return sync_index(conn, PLAN, records, complete=complete)


def _stored(engine: Engine) -> tuple[list[tuple[Any, ...]], set[tuple[int, int]], dict[int, int]]:
    """Every entry, key and count as stored."""
    with engine.connect() as conn:
        entries = [
            tuple(r)
            for r in conn.execute(
                select(
                    match_entry.c.id,
                    match_entry.c.system,
                    match_entry.c.source_id,
                    match_entry.c.canonical_record_id,
                    match_entry.c.features,
                    match_entry.c.digest,
                ).order_by(match_entry.c.id)
            )
        ]
        keys = {(r.key_hash, r.entry_id) for r in conn.execute(select(match_key))}
        counts = {r.key_hash: r.entries for r in conn.execute(select(match_count))}
    return entries, keys, counts


def assert_recounts(engine: Engine) -> None:
    """The keys and counts are those of the entries, worked out from scratch."""
    entries, keys, counts = _stored(engine)
    assert all(n > 0 for n in counts.values()), "a count at zero or below is left"
    expected_keys: set[tuple[int, int]] = set()
    expected_counts: Counter[int] = Counter()
    if entries:
        keyed = index_keys(PLAN, record_columns([e[4] for e in entries]))
        for position, entry in enumerate(entries):
            expected_keys |= {(k, entry[0]) for k in keyed.block_keys(position)}
            expected_counts.update(keyed.counted_keys(position))
            assert entry[5] == entry_digest(PLAN, entry[4])
    assert keys == expected_keys
    assert counts == dict(expected_counts)


def _entries(engine: Engine) -> dict[Key, tuple[int, dict[str, str]]]:
    """(system, source id) -> (canonical record id, features)."""
    return {(e[1], e[2]): (e[3], e[4]) for e in _stored(engine)[0]}


def _block_key(features: dict[str, str], rule: str) -> int:
    position = [name for name, _ in PLAN.blocks].index(rule)
    keys, present = index_keys(PLAN, record_columns([features])).blocks[position]
    assert present[0]
    return int(keys[0])


def _term_key(features: dict[str, str], column: str) -> int:
    keys, present = index_keys(PLAN, record_columns([features]), blocks=False).terms[
        PLAN.terms.index(column)
    ]
    assert present[0]
    return int(keys[0])


def _link(conn: Connection, members: dict[str, list[Key]]) -> None:
    """Golden records with these members (the crosswalk the index joins to)."""
    golden_store.insert_golden(
        conn,
        [
            {
                "golden_id": golden_id,
                "entity_type": "customer",
                "display_name": golden_id,
                "search_text": golden_id.casefold(),
                "data": {},
                "lineage": {},
                "member_count": len(keys),
                "fingerprint": golden_id,
            }
            for golden_id, keys in members.items()
        ],
    )
    golden_store.link(
        conn,
        [
            {
                "system": key[0],
                "source_id": key[1],
                "golden_id": golden_id,
                "rule": "test",
                "score": None,
                "evidence": {},
                "previous_golden_id": None,
            }
            for golden_id, keys in members.items()
            for key in keys
        ],
        decided_by="test",
    )


A, B, C = ("crm", "A"), ("erp", "B"), ("billing", "C")


def test_sync_writes_entries_keys_and_counts(engine: Engine) -> None:
    change = _sync(engine, [(A, 1, ANNA), (B, 2, ANNE), (C, 3, BOB)], complete=True)

    assert (change.added, change.rewritten, change.moved, change.removed) == (3, 0, 0, 0)
    assert _entries(engine) == {A: (1, ANNA), B: (2, ANNE), C: (3, BOB)}
    assert_recounts(engine)
    email = _block_key(ANNA, "block:kind+email")
    with engine.connect() as conn:
        counts = store.counts(
            conn, [email, total_key("email"), _term_key(BOB, "email"), 12345, email]
        )
        digests = store.digests(conn, [A, ("crm", "nobody")])
    assert counts == {email: 2, total_key("email"): 3, _term_key(BOB, "email"): 1}
    assert list(digests) == [A]
    assert digests[A][1:] == (entry_digest(PLAN, ANNA), 1)


def test_a_second_sync_of_the_same_records_writes_nothing(engine: Engine) -> None:
    records = [(A, 1, ANNA), (B, 2, ANNE), (C, 3, BOB)]
    _sync(engine, records, complete=True)
    before = _stored(engine)

    again = _sync(engine, records, complete=True)
    partial = _sync(engine, records[:1], complete=False)

    assert again == partial == IndexChange()
    assert _stored(engine) == before


def test_a_new_canonical_record_with_the_same_features_moves_the_entry_only(
    engine: Engine,
) -> None:
    _sync(engine, [(A, 1, ANNA), (B, 2, ANNE)], complete=True)
    _, keys, counts = _stored(engine)

    change = _sync(engine, [(A, 7, ANNA)], complete=False)

    assert (change.added, change.rewritten, change.moved, change.removed) == (0, 0, 1, 0)
    assert _entries(engine)[A] == (7, ANNA)
    assert _stored(engine)[1:] == (keys, counts)


def test_changed_features_replace_the_entrys_keys(engine: Engine) -> None:
    _sync(engine, [(A, 1, ANNA), (B, 2, ANNE)], complete=True)
    shared_email = _block_key(ANNA, "block:kind+email")

    change = _sync(engine, [(A, 2, BOB)], complete=False)

    assert (change.added, change.rewritten, change.moved, change.removed) == (0, 1, 0, 0)
    assert _entries(engine) == {A: (2, BOB), B: (2, ANNE)}
    assert_recounts(engine)
    with engine.connect() as conn:
        assert store.counts(conn, [shared_email]) == {shared_email: 1}
        assert [e.key for e in store.sharing(conn, [shared_email])] == [B]
        assert [e.key for e in store.sharing(conn, [_block_key(BOB, "block:kind+email")])] == [A]


def test_a_complete_sync_removes_the_entries_of_records_that_are_gone(engine: Engine) -> None:
    _sync(engine, [(A, 1, ANNA), (B, 2, ANNE), (C, 3, BOB)], complete=True)
    bob_only = [
        _block_key(BOB, "block:kind+email"),
        _term_key(BOB, "email"),
        _term_key(BOB, "given_name"),
    ]

    change = _sync(engine, [(A, 1, ANNA), (B, 2, ANNE)], complete=True)

    assert (change.added, change.rewritten, change.moved, change.removed) == (0, 0, 0, 1)
    assert set(_entries(engine)) == {A, B}
    assert_recounts(engine)
    with engine.connect() as conn:
        assert store.counts(conn, bob_only) == {}  # deleted at zero, not kept as 0
        assert store.counts(conn, [total_key("email")]) == {total_key("email"): 2}
        assert store.entries_for(conn, [C]) == {}

    assert _sync(engine, [], complete=False) == IndexChange()  # not complete: nothing goes
    assert set(_entries(engine)) == {A, B}
    assert _sync(engine, [], complete=True).removed == 2
    assert _stored(engine) == ([], set(), {})


def test_counts_never_go_negative_and_rows_reaching_zero_are_deleted(engine: Engine) -> None:
    with writing(engine) as conn:
        store.change_counts(conn, {1: 2, 2: 1, 3: 0})
        assert store.counts(conn, [1, 2, 3]) == {1: 2, 2: 1}
        store.change_counts(conn, {1: -1, 2: -1, 4: -1})  # 4 was never counted
        assert store.counts(conn, [1, 2, 4]) == {1: 1}
        store.change_counts(conn, {1: -3})
        rows = conn.execute(select(match_count)).all()
    assert rows == []


def test_many_counts_at_once_add_up_as_a_few_do(engine: Engine) -> None:
    # many rows go another way (COPY through a temporary table on PostgreSQL), more than
    # once in one transaction, and the same way when the transaction is a new one
    many = range(1, 1_001)
    with writing(engine) as conn:
        store.change_counts(conn, dict.fromkeys(many, 2))
        store.change_counts(conn, [(k, -1) for k in many if k % 2] + [(5_000, 7)])
        store.change_counts(conn, {2: 1})
    with writing(engine) as conn:
        store.change_counts(conn, [(k, -1) for k in many if k % 3 == 0])
        found = store.counts(conn, [*many, 5_000])
    expected = {k: 2 - (k % 2) + (k == 2) - (k % 3 == 0) for k in many}
    assert found == {k: n for k, n in expected.items() if n > 0} | {5_000: 7}


def test_sharing_members_of_and_entries_for_read_what_was_written(engine: Engine) -> None:
    _sync(engine, [(A, 1, ANNA), (B, 2, ANNE), (C, 3, BOB)], complete=True)
    with writing(engine) as conn:
        _link(conn, {"G1": [A, B], "G2": [C]})
    email = _block_key(ANNA, "block:kind+email")
    family = _block_key(ANNA, "block:kind+family_name+given_name~root")
    bob = _block_key(BOB, "block:kind+email")

    with engine.connect() as conn:
        shared = store.sharing(conn, [email, family, bob])  # A carries two of these keys
        only_family = store.sharing(conn, [family])
        by_term = store.sharing(conn, [_term_key(ANNA, "email"), total_key("email")])
        members = store.members_of(conn, ["G1", "G1", "G3"])
        found = store.entries_for(conn, [A, C, ("crm", "nobody")])
        own = store.lookup(conn, B)
        new = store.lookup(conn, ("crm", "nobody"))
        features = store.features_of(conn, [e.id for e in shared])

    assert [(e.key, e.features, e.golden_id) for e in shared] == [
        (A, ANNA, "G1"),
        (B, ANNE, "G1"),
        (C, BOB, "G2"),
    ]
    assert [e.key for e in only_family] == [A]
    assert by_term == []  # term and total keys are counted, not listed
    assert [(e.key, e.golden_id) for e in members] == [(A, "G1"), (B, "G1")]
    assert {key: (e.features, e.golden_id) for key, e in found.items()} == {
        A: (ANNA, "G1"),
        C: (BOB, "G2"),
    }
    assert own.entry is not None
    assert (own.entry.key, own.entry.features, own.golden_id, own.canonical_record_id) == (
        B,
        ANNE,
        "G1",
        2,
    )
    assert own.digest is not None
    assert new == store.Lookup(None, None, None, None)
    assert sorted(features.values(), key=str) == sorted([ANNA, ANNE, BOB], key=str)


def test_entries_without_a_crosswalk_row_have_no_golden_id(engine: Engine) -> None:
    _sync(engine, [(A, 1, ANNA), (B, 2, ANNE)], complete=True)
    with engine.connect() as conn:
        shared = store.sharing(conn, [_block_key(ANNA, "block:kind+email")])
        assert store.members_of(conn, ["G1"]) == []
        unlinked = store.lookup(conn, A)
    assert [(e.key, e.golden_id) for e in shared] == [(A, None), (B, None)]
    assert unlinked.entry is not None and unlinked.golden_id is None


def test_a_linked_record_without_an_entry_is_looked_up_by_its_golden_id(engine: Engine) -> None:
    _sync(engine, [(A, 1, ANNA)], complete=True)
    with writing(engine) as conn:
        _link(conn, {"G1": [A], "G2": [C]})
    with engine.connect() as conn:
        found = store.lookup(conn, C)
    assert found == store.Lookup(None, None, None, "G2")


def test_reads_and_writes_of_more_than_a_chunk(engine: Engine) -> None:
    size = LOOKUP_CHUNK + 20
    records = [
        (("crm", f"R{i:04d}"), i, person("anna", f"n{i}", email=f"a{i}@example.de"))
        for i in range(size)
    ]
    assert _sync(engine, records, complete=True).added == size
    assert_recounts(engine)
    emails = [_block_key(features, "block:kind+email") for _, _, features in records]
    with engine.connect() as conn:
        assert len(store.sharing(conn, emails)) == size
        assert len(store.entries_for(conn, [key for key, _, _ in records])) == size
        assert len(store.digests(conn, [key for key, _, _ in records])) == size
        assert store.counts(conn, emails) == dict.fromkeys(emails, 1)
    changed = [(key, canonical, f | {"phone": "+4930999"}) for key, canonical, f in records]
    assert _sync(engine, changed, complete=False).rewritten == size
    assert_recounts(engine)
    assert _sync(engine, [], complete=True).removed == size
    assert _stored(engine) == ([], set(), {})


# ---- any sequence of changes keeps the keys and counts a recount would find

POOL = {
    "kind": ["person", "organization"],
    "email": ["anna@example.de", "anna@web.de", "info@acme.de"],
    "phone": ["+4930111", "+4930222"],
    "given_name": ["anna", "annie", "bob", "-"],
    "family_name": ["schmidt", "schmitt", "meyer"],
    "birth_date": ["1985-04-12", "1970-01-01"],
    "postcode": ["10115", "80331"],
    "organization_name": ["acme", "acme gmbh"],
    "tax_id": ["DE1", "DE2"],
}
features_strategy = st.fixed_dictionaries(
    {}, optional={column: st.sampled_from(values) for column, values in POOL.items()}
)
IDS = 90
put = st.tuples(
    st.just("put"),
    st.lists(
        st.tuples(st.integers(0, IDS - 1), st.integers(1, 3), features_strategy),
        min_size=1,
        max_size=4,
    ),
)
remove = st.tuples(st.just("remove"), st.lists(st.integers(0, IDS - 1), min_size=1, max_size=6))


def _key(i: int) -> Key:
    return ("crm" if i % 2 else "erp", f"R{i:03d}")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(
        st.tuples(st.integers(0, IDS - 1), st.integers(1, 3), features_strategy),
        max_size=SMALL + 20,
    ),
    steps=st.lists(st.one_of(put, remove), min_size=1, max_size=6),
)
def test_any_sequence_of_changes_keeps_the_counts_of_a_recount(
    engine: Engine,
    first: list[tuple[int, int, dict[str, str]]],
    steps: list[tuple[str, Any]],
) -> None:
    with writing(engine) as conn:  # each example starts from an empty index
        for table in (match_key, match_count, match_entry, crosswalk, golden_record):
            conn.execute(delete(table))
    state: dict[Key, tuple[int, dict[str, str]]] = {}
    for i, canonical, features in first:  # a full resolve's batch (the numpy path, often)
        state[_key(i)] = (canonical, features)
    _sync(engine, [(k, c, f) for k, (c, f) in state.items()], complete=True)
    assert_recounts(engine)
    for kind, items in steps:
        if kind == "put":  # records matched one by one (the small path)
            batch: dict[Key, tuple[int, dict[str, str]]] = {}
            for i, canonical, features in items:
                batch[_key(i)] = (canonical, features)
            _sync(engine, [(k, c, f) for k, (c, f) in batch.items()], complete=False)
            state.update(batch)
        else:  # a full resolve after records went away
            for i in items:
                state.pop(_key(i), None)
            _sync(engine, [(k, c, f) for k, (c, f) in state.items()], complete=True)
        assert _entries(engine) == state
        assert_recounts(engine)


def test_keys_planned_by_the_caller_are_the_keys_written(engine: Engine) -> None:
    """Incremental matching works out a record's keys before it syncs the record's entry
    and passes them on: the index is the same as when sync_index works them out."""
    _sync(engine, [(A, 1, ANNA), (B, 2, BOB)], complete=True)
    # B changes (its keys are rewritten), C is new, A is unchanged
    records = [(A, 1, ANNA), (B, 3, ANNE), (C, 4, BOB)]
    planned = index_keys(PLAN, record_columns([features for _, _, features in records]))
    with writing(engine) as conn:
        change = sync_index(conn, PLAN, records, complete=False, planned=planned)
    assert (change.added, change.rewritten) == (1, 1)
    assert_recounts(engine)
    assert _entries(engine) == {A: (1, ANNA), B: (3, ANNE), C: (4, BOB)}


# ---- the statements incremental matching runs per record use indexes (SQLite)


def test_per_record_reads_search_by_index_not_scan(sqlite_engine: Engine) -> None:
    """A full scan is invisible on a test's few rows and takes a second on a million
    (members_of did, once: the outer join from the entries was never turned around)."""
    _sync(sqlite_engine, [(A, 1, ANNA), (B, 2, ANNE), (C, 3, BOB)], complete=True)
    with writing(sqlite_engine) as conn:
        _link(conn, {"G1": [A, B], "G2": [C]})
    email = _block_key(ANNA, "block:kind+email")
    reads = {
        "lookup": lambda conn: store.lookup(conn, A),
        "counts": lambda conn: store.counts(conn, [email, total_key("email")]),
        "sharing": lambda conn: store.sharing(conn, [email]),
        "members_of": lambda conn: store.members_of(conn, ["G1", "G2"]),
        "decisions_among": lambda conn: stewardship.decisions_among(conn, [A, B, C], involving=A),
    }
    for name, run in reads.items():
        plans = query_plans(sqlite_engine, run)
        scans = [step for step in plans if step.startswith("SCAN") and "CONSTANT ROW" not in step]
        # the one-row select that lookup joins from is scanned, and nothing else
        assert scans in ([], ["SCAN anon_1"]), (name, plans)
