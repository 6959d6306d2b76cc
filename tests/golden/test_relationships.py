"""Relationships between customers: contact of, subsidiary of. Worked out from the
systems' own reference fields, through the crosswalk, never as merges."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from accord.demo.generator import generate
from accord.demo.run import inputs, write_project
from accord.golden import customers
from accord.golden.relationships import relationships
from accord.golden.resolve import resolve
from accord.govern.permissions import cli_actor
from accord.intake.load import load_file
from accord.store.tables import relationship
from accord.workspace import open_workspace


def test_a_reference_joins_the_customers_of_both_records() -> None:
    golden_of = {("crm", "C1"): "G1", ("crm", "A1"): "G2", ("crm", "A2"): "G3"}
    found = relationships(
        [
            (("crm", "C1"), {"account_ref": "A1"}),
            (("crm", "A1"), {"parent_ref": "A2"}),
        ],
        golden_of,
    )
    assert set(found.found) == {("G1", "G2", "contact_of"), ("G2", "G3", "subsidiary_of")}
    assert found.found[("G1", "G2", "contact_of")] == [
        {"system": "crm", "source_id": "C1", "field": "account_ref", "ref": "A1"}
    ]
    assert found.dangling == 0


def test_references_stay_within_their_system_and_are_never_guessed() -> None:
    # "A1" in the ERP is another record than "A1" in the CRM
    golden_of = {("crm", "C1"): "G1", ("erp", "A1"): "G2"}
    found = relationships([(("crm", "C1"), {"account_ref": "A1"})], golden_of)
    assert found.found == {}
    assert found.dangling == 1


def test_a_reference_inside_one_customer_is_not_a_relationship() -> None:
    golden_of = {("crm", "C1"): "G1", ("crm", "A1"): "G1"}
    found = relationships([(("crm", "C1"), {"account_ref": "A1"})], golden_of)
    assert found.found == {}
    assert found.dangling == 0


def test_two_records_saying_the_same_make_one_relationship_with_both_as_evidence() -> None:
    golden_of = {("crm", "C1"): "G1", ("crm", "C2"): "G1", ("crm", "A1"): "G2"}
    found = relationships(
        [(("crm", "C2"), {"account_ref": "A1"}), (("crm", "C1"), {"account_ref": "A1"})],
        golden_of,
    )
    assert list(found.found) == [("G1", "G2", "contact_of")]
    assert [e["source_id"] for e in found.found[("G1", "G2", "contact_of")]] == ["C1", "C2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("relationships")
    data, project = root / "data", root / "project"
    generate(data, seed=11, customers=400)
    write_project(project)
    return data, project


def _golden_of_parties(engine: Engine, data: Path) -> dict[str, str]:
    """Each true party's main golden id (where most of its records went)."""
    with engine.connect() as conn:
        crosswalk = {
            (r.system, r.source_id): r.golden_id
            for r in conn.execute(select(*_crosswalk_columns()))
        }
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    with (data / "truth.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            golden = crosswalk.get((row["system"], row["source_id"]))
            if golden:
                votes[row["party_id"]][golden] += 1
    return {party: count.most_common(1)[0][0] for party, count in votes.items()}


def _crosswalk_columns() -> list[object]:
    from accord.store.tables import crosswalk  # noqa: PLC0415

    return [crosswalk.c.system, crosswalk.c.source_id, crosswalk.c.golden_id]


def test_the_demo_company_resolves_with_its_contacts_and_group_companies(
    demo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    data, project = demo
    ws = open_workspace(project)
    for system, path in inputs(data):
        load_file(ws.engine, ws.project, system, path, actor="test")
    report = resolve(ws.engine, ws.project, actor="test")
    assert report.relationships > 0

    with ws.engine.connect() as conn:
        stored = {
            (r.from_golden_id, r.to_golden_id, r.type): r.evidence
            for r in conn.execute(select(relationship))
        }
    assert len(stored) == report.relationships
    kinds = Counter(kind for _, _, kind in stored)
    assert kinds["contact_of"] > 0
    assert kinds["subsidiary_of"] > 0

    # measured against the generator's ground truth
    main = _golden_of_parties(ws.engine, data)
    truth = set()
    with (data / "truth_relationships.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            a, b = main.get(row["from_party_id"]), main.get(row["to_party_id"])
            if a and b and a != b:
                truth.add((a, b, row["relationship"]))
    correct = len(truth & stored.keys())
    assert correct / len(stored) >= 0.95  # precision
    assert correct / len(truth) >= 0.8  # recall: only the CRM states relationships

    # a customer shows them both ways, with names
    edge = next(e for e in stored if e[2] == "contact_of")
    with ws.engine.connect() as conn:
        contact = customers.get(conn, cli_actor(), edge[0])
        account = customers.get(conn, cli_actor(), edge[1])
    assert {(r["type"], r["direction"], r["golden_id"]) for r in contact["relationships"]} >= {
        ("contact_of", "outgoing", edge[1])
    }
    assert ("contact_of", "incoming", edge[0]) in {
        (r["type"], r["direction"], r["golden_id"]) for r in account["relationships"]
    }

    # a second resolve over the same data rewrites nothing
    def written() -> set[tuple[object, ...]]:
        with ws.engine.connect() as conn:
            return {
                (r.from_golden_id, r.to_golden_id, r.type, json.dumps(r.evidence), r.updated_at)
                for r in conn.execute(select(relationship))
            }

    before = written()
    again = resolve(ws.engine, ws.project, actor="test")
    assert again.relationships == report.relationships
    assert written() == before
