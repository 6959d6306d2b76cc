"""Incremental resolve (`accord resolve DIR --incremental`), end to end on both stores: the
demo company (150 generated customers, shipped learned engine) plus a few hand-made CRM
contacts is loaded without its service desk and fully resolved; then new or changed
records are matched one at a time against the match index and the stored model.

A full resolve builds the index (and a re-run leaves it alone); matching the held-out
system incrementally is about as good as a full resolve and leaves untouched customers
alone; a new record joins the customer it duplicates, merges two it bridges, and a
changed one leaves its customer; steward decisions and the contradiction guard hold;
oversized blocks are skipped and reported; and it refuses, with a hint, when there is no
model, the settings changed or the rules engine is configured.

Each store is built once per backend and copied into every test (`based`), so the tests
pay for a load and a full resolve once, not each time.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Engine, delete, event, func, select, text
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config.loader import Project, load_project
from accord.demo.generator import generate
from accord.demo.run import inputs, read_truth, write_project
from accord.golden import customers
from accord.golden.incremental import IncrementalResolver, IncrementalUnavailable, resolve_changes
from accord.golden.resolve import ResolveReport, resolve
from accord.govern import audit
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.match.evaluate import pairwise_scores
from accord.match.features import features_of
from accord.match.index import IndexPlan, entry_digest, index_keys
from accord.match.interface import OversizedBlock
from accord.match.learned import record_columns
from accord.steward import service
from accord.store import golden as golden_store
from accord.store import match_index as index_store
from accord.store import search, stewardship
from accord.store.engine import writing
from accord.store.tables import (
    audit_log,
    crosswalk,
    match_count,
    match_entry,
    match_key,
    match_review,
    metadata,
    record_head,
    relationship,
)
from accord.workspace import open_workspace
from tests.factories import crm_row, erp_row, write_csv

STEWARD = Actor("user", "stewie", Role.STEWARD)
HELD_OUT = "service"
Key = tuple[str, str]

_EMPTY = {"Email": "", "Phone": "", "Street": "", "PostalCode": "", "City": "", "BirthDate": ""}


def _bridge() -> dict[str, str]:
    """T-BZ: a record with enough in common with both T-BX and T-BY to join them."""
    return _contact(
        "T-BZ",
        "Quirin",
        "Hallweger",
        Email="quirin.hallweger@gmx.de",
        Phone="+49 8031 5550177",
        BirthDate="1971-09-30",
        Street="Mühlbachweg 12",
        PostalCode="83026",
        City="Rosenheim",
    )


def _contact(source_id: str, first: str, last: str, **values: str) -> dict[str, str]:
    return crm_row(source_id, FirstName=first, LastName=last, **(_EMPTY | values))


def _account(source_id: str, name: str, **values: str) -> dict[str, str]:
    return crm_row(
        source_id,
        RecordType="Account",
        FirstName="",
        LastName="",
        AccountName=name,
        **(_EMPTY | values),
    )


HEDWIG = {
    "Phone": "+49 89 5550111",
    "BirthDate": "1966-07-21",
    "Street": "Ahornstraße 3",
    "PostalCode": "80331",
    "City": "München",
}
LEOPOLD = {
    "Email": "leopold.wimmerer@gmx.at",
    "Phone": "+43 664 5550199",
    "BirthDate": "1958-02-11",
    "Street": "Grabenweg 9",
    "PostalCode": "6020",
    "City": "Innsbruck",
    "Country": "Austria",
}
GUNDULA = {
    "Phone": "+49 821 5550144",
    "BirthDate": "1974-05-05",
    "Street": "Frauentorstraße 21",
    "PostalCode": "86152",
    "City": "Augsburg",
}
# Hand-made people beside the generated ones, one small story each.
CRAFTED = [
    # one customer: the same name and address; only T-GB has a birth date
    _contact(
        "T-GA",
        "Ottilie",
        "Brandhuber",
        Email="ottilie.brandhuber@posteo.de",
        Street="Lindenweg 7",
        PostalCode="83022",
        City="Rosenheim",
    ),
    _contact(
        "T-GB",
        "Ottilie",
        "Brandhuber",
        Phone="+49 171 5550123",
        BirthDate="1979-03-14",
        Street="Lindenweg 7",
        PostalCode="83022",
        City="Rosenheim",
    ),
    # two customers that are one person, with too little in common to tell
    _contact("T-BX", "Quirin", "Hallweger", Email="quirin.hallweger@gmx.de"),
    _contact(
        "T-BY",
        "",
        "Hallweger",
        Phone="+49 8031 5550177",
        BirthDate="1971-09-30",
        Street="Mühlbachweg 12",
        PostalCode="83026",
        City="Rosenheim",
    ),
    # one customer only because T-RZ has something of each of the other two
    _contact("T-RX", "Ludmila", "Oberhauser", Email="ludmila.oberhauser@gmx.de"),
    _contact(
        "T-RY",
        "",
        "Oberhauser",
        Phone="+49 8651 5550133",
        BirthDate="1983-06-19",
        Street="Salzburger Straße 8",
        PostalCode="83435",
        City="Bad Reichenhall",
    ),
    _contact(
        "T-RZ",
        "Ludmila",
        "Oberhauser",
        Email="ludmila.oberhauser@gmx.de",
        Phone="+49 8651 5550133",
        BirthDate="1983-06-19",
        Street="Salzburger Straße 8",
        PostalCode="83435",
        City="Bad Reichenhall",
    ),
    # a customer of three records, and one of two
    _contact("T-M1", "Hedwig", "Sauerbier", Email="hedwig.sauerbier@web.de", **HEDWIG),
    _contact("T-M2", "Hedwig", "Sauerbier", Email="hedwig.sauerbier@web.de", **HEDWIG),
    _contact("T-M3", "Hedwig", "Sauerbier", **HEDWIG),
    _contact("T-P1", "Leopold", "Wimmerer", **LEOPOLD),
    _contact("T-P2", "Leopold", "Wimmerer", **LEOPOLD),
    # a customer of two, only one of them with an email
    _contact("T-K1", "Gundula", "Rohrmoser", Email="gundula.rohrmoser@posteo.de", **GUNDULA),
    _contact("T-K2", "Gundula", "Rohrmoser", **GUNDULA),
    # five people in one postcode whose surnames start alike: one block of five
    *[
        _contact(
            f"T-OV{i}",
            first,
            last,
            Email=f"{first.lower()}.{last.lower()}@onet.pl",
            PostalCode="99999",
            City="Słubice",
        )
        for i, (first, last) in enumerate(
            [
                ("Jan", "Kowalski"),
                ("Piotr", "Kowalczyk"),
                ("Marek", "Kowalewski"),
                ("Tomasz", "Kowal"),
                ("Pawel", "Kowalik"),
            ]
        )
    ],
]
QUELLWERK = {
    "Email": "info@quellwerk-hydraulik.de",
    "Phone": "+49 711 5550100",
    "Street": "Industriestraße 4",
    "PostalCode": "70565",
    "City": "Stuttgart",
}
CRAFTED += [
    # a company of two records; only T-O1 carries the VAT number
    _account("T-O1", "Quellwerk Hydraulik GmbH", VatNumber="DE811112222", **QUELLWERK),
    _account("T-O2", "Quellwerk Hydraulik GmbH", **QUELLWERK),
]
NEW_VERSION = {  # what T-M2 / T-P2 become: someone else entirely
    "Email": "b.zwieselbrunn@t-online.de",
    "Phone": "+49 30 5550998",
    "BirthDate": "1991-12-01",
    "Street": "Birkenallee 45",
    "PostalCode": "10117",
    "City": "Berlin",
}


@dataclass
class Demo:
    root: Path
    data: Path
    project_dir: Path
    crafted: Path

    def project(self, old: str = "", new: str = "") -> Project:
        """The demo project, or a copy of it with `old` replaced by `new` in accord.yaml."""
        if not old:
            return load_project(self.project_dir)
        target = self.root / f"edited-{sha256((old + new).encode()).hexdigest()[:12]}"
        if not target.exists():
            shutil.copytree(self.project_dir, target)
            config = target / "accord.yaml"
            original = config.read_text(encoding="utf-8")
            assert old in original
            config.write_text(original.replace(old, new), encoding="utf-8")
        return load_project(target)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("incremental")
    data, project = root / "data", root / "project"
    generate(data, seed=3, customers=150)
    write_project(project)
    return Demo(root, data, project, write_csv(root / "crafted.csv", CRAFTED))


def _load_base(engine: Engine, project: Project, demo: Demo) -> None:
    for system, path in inputs(demo.data):
        if system != HELD_OUT:
            load_file(engine, project, system, path, actor="test")
    load_file(engine, project, "crm", demo.crafted, actor="test")


# ---- one store per backend and settings, built once and copied into each test


def _dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            table.name: [dict(r._mapping) for r in conn.execute(select(table))]
            for table in metadata.sorted_tables
        }


def _restore(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    with writing(engine) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))
        for table in metadata.sorted_tables:
            if rows[table.name]:
                conn.execute(table.insert(), rows[table.name])
        search.rebuild(conn)  # the index of golden records is no table of the metadata
        if conn.dialect.name == "postgresql":  # ids go on from where the copy left off
            for table in metadata.sorted_tables:
                if "id" in table.c and table.c.id.autoincrement is not False:
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                        )
                    )


_BUILT: dict[tuple[str, str], tuple[dict[str, list[dict[str, Any]]], ResolveReport]] = {}


@dataclass
class Based:
    engine: Engine
    project: Project
    demo: Demo
    full: ResolveReport  # the full resolve that built the store
    folder: Path

    def add(self, rows: list[dict[str, str]], name: str = "new.csv") -> ResolveReport:
        """Load CRM rows (new records or new versions) and resolve incrementally."""
        load_file(
            self.engine, self.project, "crm", write_csv(self.folder / name, rows), actor="test"
        )
        return resolve_changes(self.engine, self.project, actor="test")

    def golden_of(self, source_id: str, system: str = "crm") -> str:
        with self.engine.connect() as conn:
            return str(
                conn.execute(
                    select(crosswalk.c.golden_id).where(
                        crosswalk.c.system == system, crosswalk.c.source_id == source_id
                    )
                ).scalar_one()
            )


def _based(engine: Engine, demo: Demo, project: Project, tmp_path: Path) -> Based:
    key = (engine.dialect.name, project.digest)
    if key not in _BUILT:
        _load_base(engine, project, demo)
        report = resolve(engine, project, actor="test")
        _BUILT[key] = (_dump(engine), report)
    else:
        _restore(engine, _BUILT[key][0])
    return Based(engine, project, demo, _BUILT[key][1], tmp_path)


@pytest.fixture
def based(engine: Engine, demo: Demo, tmp_path: Path) -> Based:
    """The demo without its service desk, fully resolved, on each backend."""
    return _based(engine, demo, demo.project(), tmp_path)


# ---- reading the store


def _crosswalk(engine: Engine) -> dict[Key, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(crosswalk.c.system, crosswalk.c.source_id, crosswalk.c.golden_id)
        )
        return {(r.system, r.source_id): r.golden_id for r in rows}


def _members(assignment: dict[Key, str]) -> dict[str, set[Key]]:
    found: dict[str, set[Key]] = {}
    for key, golden_id in assignment.items():
        found.setdefault(golden_id, set()).add(key)
    return found


def _rows(engine: Engine, *tables: Any) -> list[list[tuple[Any, ...]]]:
    """Every row of the tables, in a stable order."""
    with engine.connect() as conn:
        return [
            sorted((tuple(r) for r in conn.execute(select(table))), key=repr) for table in tables
        ]


@contextmanager
def _writes(engine: Engine) -> Iterator[list[str]]:
    """The statements that write (INSERT, UPDATE, DELETE) run on `engine` meanwhile."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        if statement.startswith(("INSERT", "UPDATE", "DELETE")):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def _audit_since(engine: Engine, seq: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.subject_id)
            .where(audit_log.c.seq > seq)
            .order_by(audit_log.c.seq)
        )
        return [(r.action, r.subject_id) for r in rows]


def _last_seq(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(audit_log.c.seq))).scalar_one())


def _golden(engine: Engine, golden_id: str) -> dict[str, Any]:
    """A golden record's row, its lineage as read (the stored form unpacked)."""
    with engine.connect() as conn:
        found = golden_store.get(conn, golden_id)
    assert found is not None
    return found


def _open_reviews(engine: Engine, source_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(match_review).where(
                match_review.c.status == "open",
                (match_review.c.left_source_id == source_id)
                | (match_review.c.right_source_id == source_id),
            )
        )
        return [dict(r._mapping) for r in rows]


def _assert_index_recounts(engine: Engine, plan: IndexPlan) -> None:
    """match_key and match_count are what the entries' features give, from scratch."""
    with engine.connect() as conn:
        entries = conn.execute(select(match_entry.c.id, match_entry.c.features)).all()
        stored_keys = {(r.key_hash, r.entry_id) for r in conn.execute(select(match_key))}
        stored_counts = {r.key_hash: r.entries for r in conn.execute(select(match_count))}
    keyed = index_keys(plan, record_columns([e.features for e in entries]))
    keys: set[tuple[int, int]] = set()
    counts: Counter[int] = Counter()
    for position, entry in enumerate(entries):
        keys |= {(k, entry.id) for k in keyed.block_keys(position)}
        counts.update(keyed.counted_keys(position))
    assert stored_keys == keys
    assert stored_counts == dict(counts)


def _new_contact_like(demo: Demo, source_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """A generated CRM contact with name, email, phone and birth date, and a new contact
    (`source_id`) with the same values: the same person entered twice."""
    with (demo.data / "crm.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            wanted = ("FirstName", "LastName", "Email", "Phone", "BirthDate")
            if row["RecordType"] == "Contact" and all(row[c] for c in wanted):
                copy = crm_row(source_id, **{c: row[c] for c in (*wanted, "Street", "City")})
                copy.update(PostalCode=row["PostalCode"], Country=row["Country"])
                return row, copy
    raise AssertionError("no complete contact in the generated CRM")


# ---- 1. a full resolve builds the index


def test_a_full_resolve_indexes_every_current_record(based: Based) -> None:
    plan = IndexPlan.of(based.project.config.match)
    with based.engine.connect() as conn:
        heads = {
            (r.system, r.source_id): r.canonical_record_id
            for r in conn.execute(select(record_head))
        }
        entries = conn.execute(select(match_entry)).all()
        model = stewardship.latest_model(conn)
    assert based.full.records == len(heads) > 300
    assert {(e.system, e.source_id): e.canonical_record_id for e in entries} == heads
    assert all(e.digest == entry_digest(plan, e.features) for e in entries)
    assert model is not None
    assert model["params"]["settings_digest"] == plan.settings
    _assert_index_recounts(based.engine, plan)


def test_a_second_full_resolve_over_unchanged_data_leaves_the_index_alone(based: Based) -> None:
    before = _rows(based.engine, match_entry, match_key, match_count, crosswalk)

    with _writes(based.engine) as writes:
        again = resolve(based.engine, based.project, actor="test")

    assert (again.created, again.updated, again.merged, again.retired) == (0, 0, 0, 0)
    assert _rows(based.engine, match_entry, match_key, match_count, crosswalk) == before
    index_tables = ("MATCH_ENTRY", "MATCH_KEY", "MATCH_COUNT")
    assert [w for w in writes if any(table in w for table in index_tables)] == []
    assert writes  # the watch works: the run itself is audited


# ---- 2. the held-out system, matched incrementally


def test_the_held_out_system_resolved_incrementally_is_as_good_as_a_full_resolve(
    based: Based,
) -> None:
    engine, project = based.engine, based.project
    before = _crosswalk(engine)
    [(_, service_file)] = [(s, p) for s, p in inputs(based.demo.data) if s == HELD_OUT]
    loaded = load_file(engine, project, HELD_OUT, service_file, actor="test")

    report = resolve_changes(engine, project, actor="test")

    assert report.records == loaded.new > 50
    after = _crosswalk(engine)
    with engine.connect() as conn:
        assert set(after) == {
            (r.system, r.source_id) for r in conn.execute(select(record_head))
        }  # every record has its customer
        assert audit.verify(conn).ok
    assert {key for key in after if key[0] == HELD_OUT} <= set(report.assignment)
    # a customer no new record joined is the one it was: the same id, the same members
    touched = {after[key] for key in after if key[0] == HELD_OUT}
    members_before, members_after = _members(before), _members(after)
    untouched = set(members_after) - touched
    assert len(untouched) > 100
    for golden_id in untouched:
        assert members_after[golden_id] == members_before.get(golden_id), golden_id
    _assert_index_recounts(engine, IndexPlan.of(project.config.match))

    # nothing is left to match, and matching nothing writes nothing
    state = _rows(engine, *metadata.sorted_tables)
    with _writes(engine) as writes:
        again = resolve_changes(engine, project, actor="test")
    assert again.records == 0
    assert (again.created, again.updated, again.merged, again.review) == (0, 0, 0, 0)
    assert writes == []
    assert _rows(engine, *metadata.sorted_tables) == state

    truth = read_truth(based.demo.data / "truth.csv")
    incremental = pairwise_scores(after, truth).f1
    full = pairwise_scores(resolve(engine, project, actor="test").assignment, truth).f1
    assert incremental > 0.8
    assert abs(incremental - full) <= 0.02, (incremental, full)


# ---- 3-5. new and changed records


def test_a_new_record_duplicating_a_customer_joins_it(based: Based) -> None:
    original, duplicate = _new_contact_like(based.demo, "T-DUP")
    customer = based.golden_of(original["Id"])
    members = _golden(based.engine, customer)["member_count"]
    seq = _last_seq(based.engine)

    report = based.add([duplicate])

    assert report.records == 1
    assert based.golden_of("T-DUP") == customer
    assert report.assignment[("crm", "T-DUP")] == customer
    assert (report.created, report.updated, report.merged) == (0, 1, 0)
    assert _golden(based.engine, customer)["member_count"] == members + 1
    events = _audit_since(based.engine, seq)
    assert ("golden.updated", customer) in events
    assert not [e for e in events if e[0] == "golden.created"]
    with based.engine.connect() as conn:
        row = conn.execute(select(crosswalk).where(crosswalk.c.source_id == "T-DUP")).one()._mapping
        assert audit.verify(conn).ok
    assert row["rule"] == "model"
    assert row["evidence"]["probability"] >= 0.95


def test_a_new_record_bridging_two_customers_merges_them(based: Based) -> None:
    first, second = based.golden_of("T-BX"), based.golden_of("T-BY")
    assert first != second  # too little in common: two customers so far
    seq = _last_seq(based.engine)

    report = based.add([_bridge()])

    kept = based.golden_of("T-BZ")
    assert kept in {first, second}
    merged = ({first, second} - {kept}).pop()
    assert based.golden_of("T-BX") == based.golden_of("T-BY") == kept
    assert report.merged == 1
    assert report.links_by_rule == {"model": 2}
    with based.engine.connect() as conn:
        old = customers.get(conn, STEWARD, merged)
        new = customers.get(conn, STEWARD, kept)
    assert (old["status"], old["merged_into"], old["members"]) == ("merged", kept, [])
    assert {m["source_id"] for m in new["members"]} == {"T-BX", "T-BY", "T-BZ"}
    assert new["member_count"] == 3
    assert ("golden.merged", merged) in _audit_since(based.engine, seq)


def test_a_changed_record_leaves_its_customer_and_the_others_keep_theirs(
    based: Based,
) -> None:
    customer = based.golden_of("T-M1")
    assert based.golden_of("T-M2") == based.golden_of("T-M3") == customer

    report = based.add([_contact("T-M2", "Bernhardine", "Zwieselbrunn", **NEW_VERSION)])

    assert report.records == 1
    assert based.golden_of("T-M1") == based.golden_of("T-M3") == customer
    assert based.golden_of("T-M2") != customer
    assert (report.created, report.updated, report.merged, report.retired) == (1, 1, 0, 0)
    assert _golden(based.engine, customer)["member_count"] == 2
    moved = _golden(based.engine, based.golden_of("T-M2"))
    assert (moved["member_count"], moved["display_name"]) == (1, "Bernhardine Zwieselbrunn")


def test_a_changed_record_that_held_its_customer_together_leaves_it_split(
    based: Based,
) -> None:
    customer = based.golden_of("T-RZ")
    assert based.golden_of("T-RX") == based.golden_of("T-RY") == customer

    report = based.add([_contact("T-RZ", "Bernhardine", "Zwieselbrunn", **NEW_VERSION)])

    # the two left behind are scored again, and have too little in common
    assert len({based.golden_of("T-RX"), based.golden_of("T-RY"), based.golden_of("T-RZ")}) == 3
    assert customer in {based.golden_of("T-RX"), based.golden_of("T-RY"), based.golden_of("T-RZ")}
    assert report.created == 2
    with based.engine.connect() as conn:
        for source_id in ("T-RX", "T-RY", "T-RZ"):
            golden_id = based.golden_of(source_id)
            members = customers.get(conn, STEWARD, golden_id)["members"]
            assert [m["source_id"] for m in members] == [source_id]


def test_a_changed_record_leaving_a_two_record_customer_leaves_the_id_behind(
    based: Based,
) -> None:
    customer = based.golden_of("T-P1")
    assert based.golden_of("T-P2") == customer

    based.add([_contact("T-P2", "Bernhardine", "Zwieselbrunn", **NEW_VERSION)])

    # a full resolve from the same state keeps the id on T-P1 (the smaller key)
    assert based.golden_of("T-P1") == customer
    assert based.golden_of("T-P2") != customer


def test_a_customer_the_new_record_does_not_touch_is_left_as_it_was(based: Based) -> None:
    customer = based.golden_of("T-K1")
    assert based.golden_of("T-K2") == customer
    before = _golden(based.engine, customer)
    seq = _last_seq(based.engine)

    # shares only the email's local part with T-K1 (a blocking rule), nothing else
    report = based.add(
        [
            _contact(
                "T-N",
                "Severin",
                "Dachsberger",
                Email="gundula.rohrmoser@web.de",
                BirthDate="1969-01-17",
            )
        ]
    )

    assert report.pairs_compared >= 1  # it was compared with T-K1
    assert based.golden_of("T-N") != customer
    after = _golden(based.engine, customer)
    assert after["member_count"] == 2
    assert (after["fingerprint"], after["data"]) == (before["fingerprint"], before["data"])
    assert ("golden.updated", customer) not in _audit_since(based.engine, seq)


def test_a_new_record_linked_by_a_rule_joins_the_whole_customer(based: Based) -> None:
    customer = based.golden_of("T-O1")
    assert based.golden_of("T-O2") == customer
    seq = _last_seq(based.engine)

    # only the VAT number in common (with T-O1): the rule links, the model would not
    report = based.add(
        [_account("T-O3", "QW Antriebstechnik AG", VatNumber="DE811112222", Email="k@qw.de")]
    )

    assert report.links_by_rule == {"same_tax_id": 1}
    assert based.golden_of("T-O3") == customer
    assert ("golden.updated", customer) in _audit_since(based.engine, seq)
    with based.engine.connect() as conn:
        members = customers.get(conn, STEWARD, customer)["members"]
    assert {m["source_id"] for m in members} == {"T-O1", "T-O2", "T-O3"}
    assert _golden(based.engine, customer)["member_count"] == 3


def test_a_new_version_with_the_same_match_features_keeps_its_customer(based: Based) -> None:
    customer = based.golden_of("T-M1")
    members = {m for m, g in _crosswalk(based.engine).items() if g == customer}
    assert len(members) == 3
    seq = _last_seq(based.engine)

    # only the lifecycle status changes (the CRM has authority over it)
    report = based.add(
        [
            _contact(
                "T-M1",
                "Hedwig",
                "Sauerbier",
                Email="hedwig.sauerbier@web.de",
                Status="Former Customer",
                **HEDWIG,
            )
        ]
    )

    assert report.records == 1
    assert report.pairs_compared == 0  # nothing to match again
    assert (report.created, report.updated, report.merged) == (0, 1, 0)
    assert {m for m, g in _crosswalk(based.engine).items() if g == customer} == members
    golden = _golden(based.engine, customer)
    assert golden["data"]["lifecycle_status"] == "churned"
    assert golden["member_count"] == 3
    events = _audit_since(based.engine, seq)
    assert [e for e in events if e[0].startswith("golden.")] == [("golden.updated", customer)]
    assert resolve_changes(based.engine, based.project, actor="test").records == 0


# ---- 6. steward decisions


def test_a_different_decision_keeps_a_new_record_out_of_its_match(based: Based) -> None:
    original, duplicate = _new_contact_like(based.demo, "T-DUP")
    customer = based.golden_of(original["Id"])
    members = _golden(based.engine, customer)["member_count"]
    load_file(
        based.engine,
        based.project,
        "crm",
        write_csv(based.folder / "dup.csv", [duplicate]),
        actor="test",
    )
    with writing(based.engine) as conn:
        service.decide_pair(
            conn, STEWARD, ("crm", "T-DUP"), ("crm", original["Id"]), decision="different"
        )

    report = resolve_changes(based.engine, based.project, actor="test")

    assert report.records == 1
    assert based.golden_of("T-DUP") != customer
    assert based.golden_of(original["Id"]) == customer
    assert _golden(based.engine, customer)["member_count"] == members
    assert report.created == 1
    decided = {
        (r["left_source_id"], r["right_source_id"]) for r in _open_reviews(based.engine, "T-DUP")
    }
    assert tuple(sorted((original["Id"], "T-DUP"))) not in decided  # decided: not queued


def test_a_same_decision_joins_a_new_record_the_model_would_not_link(based: Based) -> None:
    original, _ = _new_contact_like(based.demo, "unused")
    customer = based.golden_of(original["Id"])
    stranger = _contact(
        "T-SAME",
        "Zacharias",
        "Pfefferkorn",
        Email="z.pfefferkorn@mailbox.org",
        BirthDate="1949-10-10",
    )
    load_file(
        based.engine,
        based.project,
        "crm",
        write_csv(based.folder / "same.csv", [stranger]),
        actor="test",
    )
    with writing(based.engine) as conn:
        service.decide_pair(
            conn, STEWARD, ("crm", original["Id"]), ("crm", "T-SAME"), decision="same"
        )

    report = resolve_changes(based.engine, based.project, actor="test")

    assert based.golden_of("T-SAME") == customer
    assert report.links_by_rule.get("steward") == 1
    with based.engine.connect() as conn:
        rule = conn.execute(
            select(crosswalk.c.rule).where(crosswalk.c.source_id == "T-SAME")
        ).scalar_one()
        resolver = IncrementalResolver(based.project, stewardship.latest_model(conn))
        explained = resolver.explain(conn, ("crm", "T-SAME"), ("crm", original["Id"]))
    assert rule == "steward"
    assert explained["probability"] < 0.5  # the model alone keeps them apart


# ---- 7. the contradiction guard


def test_a_link_that_would_bring_a_contradicting_birth_date_goes_to_review(
    based: Based,
) -> None:
    customer = based.golden_of("T-GA")
    assert based.golden_of("T-GB") == customer  # T-GB brings the birth date 1979-03-14

    # the same name and email as T-GA (a strong link), another birth date
    report = based.add(
        [
            _contact(
                "T-GC",
                "Ottilie",
                "Brandhuber",
                Email="ottilie.brandhuber@posteo.de",
                BirthDate="1988-11-02",
            )
        ]
    )

    assert based.golden_of("T-GC") != customer
    assert report.created == 1
    assert report.review >= 1
    reviews = {
        (r["left_source_id"], r["right_source_id"]): r for r in _open_reviews(based.engine, "T-GC")
    }
    held = reviews[("T-GA", "T-GC")]
    assert held["reason"].startswith("contradicting")
    assert "birth_date" in held["reason"]
    assert held["probability"] >= 0.95  # strong, and yet not linked
    assert held["explanation"]["comparisons"]


# ---- 8. refusals


def test_without_a_full_resolve_there_is_nothing_to_match_against(
    engine: Engine, demo: Demo
) -> None:
    project = demo.project()
    load_file(engine, project, "crm", demo.crafted, actor="test")

    with pytest.raises(IncrementalUnavailable) as refused:
        resolve_changes(engine, project, actor="test")

    assert "no learned model" in refused.value.message
    assert refused.value.hint is not None
    assert "full `accord resolve` first" in refused.value.hint
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(crosswalk)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(match_entry)).scalar_one() == 0


def test_changed_match_settings_need_a_full_resolve(based: Based) -> None:
    changed = based.demo.project("thresholds: {link: 0.95,", "thresholds: {link: 0.9,")
    assert changed.config.match.model.thresholds.link == 0.9  # type: ignore[union-attr]
    load_file(
        based.engine, changed, "crm", write_csv(based.folder / "n.csv", [crm_row("N1")]), actor="t"
    )

    with pytest.raises(IncrementalUnavailable) as refused:
        resolve_changes(based.engine, changed, actor="test")

    assert "match settings changed" in refused.value.message
    assert "full `accord resolve`" in (refused.value.hint or "")
    with based.engine.connect() as conn:
        assert ("crm", "N1") not in _crosswalk(based.engine)
        assert (
            conn.execute(
                select(func.count()).select_from(match_entry).where(match_entry.c.source_id == "N1")
            ).scalar_one()
            == 0
        )

    resolve(based.engine, changed, actor="test")  # a full resolve under the new settings
    assert resolve_changes(based.engine, changed, actor="test").records == 0


def test_the_rules_engine_cannot_match_incrementally(
    engine: Engine, demo_project_dir: Path
) -> None:
    project = load_project(demo_project_dir)
    assert project.config.match.engine == "rules"

    with pytest.raises(IncrementalUnavailable) as refused:
        resolve_changes(engine, project, actor="test")

    assert "learned engine" in refused.value.message
    assert "full `accord resolve`" in (refused.value.hint or "")


runner = CliRunner()


def _cli(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def cli_project(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo project in a folder of its own, with its store inside (SQLite)."""
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    project = tmp_path / "project"
    shutil.copytree(demo.project_dir, project)
    return project


def _refused(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.output


def test_the_cli_refuses_an_incremental_resolve_before_a_full_one(
    cli_project: Path, demo: Demo
) -> None:
    assert _cli("load", cli_project, "--system", "crm", demo.crafted).exit_code == 0

    output = _refused(_cli("resolve", cli_project, "--incremental"))

    assert "no learned model" in output
    assert "hint:" in output
    assert "full `accord resolve` first" in output


def test_the_cli_resolves_incrementally_after_a_full_resolve(
    cli_project: Path, demo: Demo, tmp_path: Path
) -> None:
    workspace = open_workspace(cli_project)  # the store in the folder, fully resolved
    _based(workspace.engine, demo, workspace.project, tmp_path)
    workspace.engine.dispose()
    [(_, service_file)] = [(s, p) for s, p in inputs(demo.data) if s == HELD_OUT]
    assert _cli("load", cli_project, "--system", HELD_OUT, service_file).exit_code == 0

    result = _cli("resolve", cli_project, "--incremental")

    assert result.exit_code == 0, result.output
    assert "Resolved" in result.output
    config = cli_project / "accord.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("max_block_size: 300", "max_block_size: 250"),
        encoding="utf-8",
    )
    output = _refused(_cli("resolve", cli_project, "--incremental"))
    assert "match settings changed" in output
    assert "full `accord resolve`" in output


# ---- 9. oversized blocks


def test_a_new_record_in_a_block_over_the_limit_is_reported_and_not_compared(
    engine: Engine, demo: Demo, tmp_path: Path
) -> None:
    project = demo.project("max_block_size: 300", "max_block_size: 5")
    based = _based(engine, demo, project, tmp_path)
    block = ("kind+postcode+family_name~prefix3", "person|99999|kow")
    # five records share the block: at the limit, a full resolve still uses it
    assert block not in {(b.rule, b.key) for b in based.full.oversized_blocks}

    report = based.add(
        [
            _contact(
                "T-OV9",
                "Zofia",
                "Kowalska",
                Email="zofia.kowalska@onet.pl",
                PostalCode="99999",
                City="Słubice",
            )
        ]
    )

    assert report.oversized_blocks == [OversizedBlock(*block, 6)]
    assert report.pairs_compared == 0  # with none of the five
    assert report.created == 1
    neighbours = {based.golden_of(f"T-OV{i}") for i in range(5)}
    assert based.golden_of("T-OV9") not in neighbours
    # a full resolve now skips the block too, and names it the same way
    full = resolve(engine, project, actor="test")
    assert OversizedBlock(*block, 6) in full.oversized_blocks


# ---- 10. employers: a contact's account name, and contacts found by company name


def _employer_edges(engine: Engine) -> dict[Key, tuple[str, str]]:
    """The stating record of every contact found by employer name -> its edge."""
    with engine.connect() as conn:
        rows = conn.execute(select(relationship)).all()
    return {
        (e["system"], e["source_id"]): (r.from_golden_id, r.to_golden_id)
        for r in rows
        for e in r.evidence
        if e["field"] == "employer"
    }


def test_a_new_contact_is_matched_with_its_accounts_name_as_its_employer(based: Based) -> None:
    with (based.demo.data / "crm.csv").open(newline="", encoding="utf-8") as handle:
        account = next(row for row in csv.DictReader(handle) if row["RecordType"] == "Account")
    based.add([_contact("T-EMP1", "Quirin", "Oberhauser", AccountId=account["Id"])])
    with based.engine.connect() as conn:
        looked_up = index_store.lookup(conn, ("crm", "T-EMP1"))
    assert looked_up.entry is not None
    entry = looked_up.entry.features
    company = features_of({"organization_name": account["AccountName"]})["organization_name"]
    assert entry["employer"] == company
    # the same features a full resolve gives it: nothing to rewrite
    with _writes(based.engine) as seen:
        resolve(based.engine, based.project, actor="test")
    assert not [s for s in seen if "MATCH_ENTRY" in s]


def test_contacts_found_by_company_name_follow_incremental_changes(based: Based) -> None:
    service = dict(inputs(based.demo.data))[HELD_OUT]
    load_file(based.engine, based.project, HELD_OUT, service, actor="test")
    resolve_changes(based.engine, based.project, actor="test")
    # new contacts by name need every organization: an incremental resolve leaves them
    assert _employer_edges(based.engine) == {}
    resolve(based.engine, based.project, actor="test")
    found = _employer_edges(based.engine)
    assert found
    with service.open(newline="", encoding="utf-8") as handle:
        rows = {row["requester_id"]: row for row in csv.DictReader(handle)}
    stating = next(key for key in sorted(found) if key[1] in rows)
    row = rows[stating[1]]

    def new_version(**values: str) -> ResolveReport:
        path = (
            based.folder
            / f"service-{len(values)}-{sha256(repr(values).encode()).hexdigest()[:8]}.csv"
        )
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row | values)
        load_file(based.engine, based.project, HELD_OUT, path, actor="test")
        return resolve_changes(based.engine, based.project, actor="test")

    # another phone: the record is matched again, and the contact stays
    new_version(phone="+49 30 5550123")
    assert _employer_edges(based.engine).get(stating) == (
        based.golden_of(stating[1], HELD_OUT),
        found[stating][1],
    )
    # another company, one Accord does not know: the contact goes
    new_version(organization="Nirgendwo Holding")
    assert stating not in _employer_edges(based.engine)


# ---- 11. parents by tax id: a subsidiary names its parent's VAT id, another system holds it


def _tax_id_edges(engine: Engine) -> dict[Key, tuple[str, str, str]]:
    """The stating record of every subsidiary found by its parent's tax id -> its edge
    and the record matched."""
    with engine.connect() as conn:
        rows = conn.execute(select(relationship)).all()
    return {
        (e["system"], e["source_id"]): (r.from_golden_id, r.to_golden_id, e["matched_source_id"])
        for r in rows
        for e in r.evidence
        if e["field"] == "parent_tax_id"
    }


def _erp_firm(kunnr: str, name: str, **values: str) -> dict[str, str]:
    """An ERP organization far from every other: it is a customer of its own."""
    place = {"STRAS": "Hafenstraße 90", "PSTLZ": "04109", "ORT01": "Leipzig"}
    return erp_row(
        **(place | {"KUNNR": kunnr, "KTOKD": "FIRM", "NAME1": name, "TELF1": "", "GEBDAT": ""})
        | values
    )


def _load_erp(based: Based, rows: list[dict[str, str]], name: str) -> ResolveReport:
    path = write_csv(based.folder / name, rows, delimiter=";")
    load_file(based.engine, based.project, "erp", path, actor="test")
    return resolve_changes(based.engine, based.project, actor="test")


def test_a_subsidiary_arriving_after_its_parent_is_related_to_it_incrementally(
    based: Based,
) -> None:
    # T-O1, in the CRM, holds DE811112222; the ERP names it, spelled its own way
    _load_erp(
        based,
        [_erp_firm("0099000001", "Brunnholz Logistik GmbH", ZZ_PARENT_STCEG="de 811 112 222")],
        "s.csv",
    )
    subsidiary, parent = based.golden_of("0099000001", "erp"), based.golden_of("T-O1")
    assert subsidiary != parent
    assert _tax_id_edges(based.engine)[("erp", "0099000001")] == (
        subsidiary,
        parent,
        "T-O1",
    )
    # a full resolve finds the same, and rewrites nothing of it
    with based.engine.connect() as conn:
        before = conn.execute(
            select(relationship).where(relationship.c.from_golden_id == subsidiary)
        ).all()
    resolve(based.engine, based.project, actor="test")
    with based.engine.connect() as conn:
        after = conn.execute(
            select(relationship).where(relationship.c.from_golden_id == subsidiary)
        ).all()
    assert after == before


def test_a_parent_arriving_after_its_subsidiary_is_found_and_followed_incrementally(
    based: Based,
) -> None:
    vat = "DE899990001"
    subsidiary_row = _erp_firm("0099000002", "Auenwald Service GmbH", ZZ_PARENT_STCEG=vat)
    _load_erp(based, [subsidiary_row], "s.csv")
    assert ("erp", "0099000002") not in _tax_id_edges(based.engine)  # no one holds it yet

    # the parent arrives in the CRM: its tax id is looked up among the parents named
    parent_row = _account(
        "T-AW1",
        "Auenwald Holding AG",
        VatNumber="DE 899 990 001",
        Email="zentrale@auenwald-holding.de",
        Street="Auenstraße 1",
        PostalCode="01067",
        City="Dresden",
    )
    based.add([parent_row], "parent.csv")
    subsidiary, parent = based.golden_of("0099000002", "erp"), based.golden_of("T-AW1")
    assert _tax_id_edges(based.engine)[("erp", "0099000002")] == (subsidiary, parent, "T-AW1")

    # the parent's record holds another VAT id now: the relationship goes
    based.add([parent_row | {"VatNumber": "DE899990002"}], "parent-v2.csv")
    assert ("erp", "0099000002") not in _tax_id_edges(based.engine)
    # and the subsidiary names that one: it comes back, from the subsidiary's side
    _load_erp(based, [subsidiary_row | {"ZZ_PARENT_STCEG": "DE899990002"}], "s-v2.csv")
    assert _tax_id_edges(based.engine)[("erp", "0099000002")] == (subsidiary, parent, "T-AW1")

    # another customer holds it too (a steward keeps the two apart): it is ambiguous now,
    # and the subsidiary's relationship goes, from the new holder's side
    other = _erp_firm(
        "0099000003",
        "Auenwald Holding AG",
        STCEG="DE899990002",
        STRAS="Saalering 7",
        PSTLZ="06108",
        ORT01="Halle",
    )
    load_file(
        based.engine,
        based.project,
        "erp",
        write_csv(based.folder / "other.csv", [other], delimiter=";"),
        actor="test",
    )
    with writing(based.engine) as conn:
        service.decide_pair(
            conn, STEWARD, ("erp", "0099000003"), ("crm", "T-AW1"), decision="different"
        )
    resolve_changes(based.engine, based.project, actor="test")
    assert based.golden_of("0099000003", "erp") not in {parent, subsidiary}
    assert ("erp", "0099000002") not in _tax_id_edges(based.engine)
    # as a full resolve finds
    report = resolve(based.engine, based.project, actor="test")
    assert ("erp", "0099000002") not in _tax_id_edges(based.engine)
    assert report.ambiguous_parent_tax_ids == 1


# ---- steward overrides


def test_an_override_survives_incremental_matching_and_follows_a_merge(based: Based) -> None:
    from accord.golden import overrides  # noqa: PLC0415

    first, second = based.golden_of("T-BX"), based.golden_of("T-BY")
    with writing(based.engine) as conn:
        overrides.override(
            conn, STEWARD, based.project, second, "city", value="Wasserburg", reason="visited"
        )
    assert _golden(based.engine, second)["data"]["city"] == "Wasserburg"

    # T-BZ bridges the two customers: one of them is merged into the other
    based.add([_bridge()])
    kept = based.golden_of("T-BZ")
    assert kept in {first, second}
    golden = _golden(based.engine, kept)
    assert golden["data"]["city"] == "Wasserburg"
    assert golden["lineage"]["city"]["rule"] == "steward_override"
    # a new version of a member, matched incrementally, rebuilds the customer: still pinned
    changed = _contact("T-BX", "Quirin", "Hallweger", Email="quirin.hallweger@gmx.de", City="Au")
    assert based.add([changed], "v2.csv").records == 1
    assert based.golden_of("T-BX") == kept
    assert _golden(based.engine, kept)["data"]["city"] == "Wasserburg"
