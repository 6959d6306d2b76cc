"""Relationships between customers: contact of, subsidiary of. Worked out from the
systems' own reference fields, through the crosswalk, never as merges."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import load_project
from accord.demo.generator import generate
from accord.demo.run import inputs, read_truth, write_project
from accord.golden import customers
from accord.golden.relationships import referenced_employers, relationships, stating
from accord.golden.resolve import resolve
from accord.govern.permissions import cli_actor
from accord.intake.load import load_file
from accord.intake.mapping import MappedRecord, RecordMapper
from accord.store.tables import relationship
from accord.workspace import open_workspace
from tests.conftest import DEMO_PROJECT
from tests.factories import crm_row, erp_row


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


def _org(name: str) -> dict[str, str]:
    return {"kind": "organization", "organization_name": name}


def _person(**values: str) -> dict[str, str]:
    return {"kind": "person", "family_name": "Weber"} | values


def test_an_employer_name_states_a_contact_of_the_one_organization_of_that_name() -> None:
    golden_of = {("service", "S1"): "G1", ("crm", "A1"): "G2", ("erp", "F1"): "G2"}
    found = relationships(
        [
            (("service", "S1"), _person(employer="acme")),  # as the agent typed it
            (("erp", "F1"), _org("ACME")),
            (("crm", "A1"), _org("Acme GmbH")),
        ],
        golden_of,
    )
    assert found.found == {
        ("G1", "G2", "contact_of"): [
            {
                "system": "service",
                "source_id": "S1",
                "field": "employer",
                "name": "acme",
                "matched_system": "crm",  # the smallest key of the organization's records
                "matched_source_id": "A1",
            }
        ]
    }
    assert (found.ambiguous_employers, found.unknown_employers) == (0, 0)


# two service-desk people and two CRM organizations, each a customer of its own
TWO_PEOPLE_TWO_ORGANIZATIONS = {
    ("service", "S1"): "G1",
    ("service", "S2"): "G2",
    ("crm", "A1"): "G3",
    ("crm", "A2"): "G4",
}


def test_an_employer_name_that_fits_several_organizations_or_none_is_not_guessed() -> None:
    golden_of = TWO_PEOPLE_TWO_ORGANIZATIONS
    found = relationships(
        [
            (("service", "S1"), _person(employer="Acme")),
            (("service", "S2"), _person(employer="Umbrella Corp")),
            (("crm", "A1"), _org("Acme Ltd")),
            (("crm", "A2"), _org("ACME Inc")),  # another customer of the same name
        ],
        golden_of,
    )
    assert found.found == {}
    assert (found.ambiguous_employers, found.unknown_employers) == (1, 1)


def test_a_short_name_that_begins_several_organizations_names_is_ambiguous() -> None:
    golden_of = TWO_PEOPLE_TWO_ORGANIZATIONS
    records = [
        (("service", "S1"), _person(employer="Provenceservice")),
        (("service", "S2"), _person(employer="provenceservice immobilier")),
        (("crm", "A1"), _org("Provenceservice SAS")),
        (("crm", "A2"), _org("Provenceservice Immobilier S.A.S.")),  # its subsidiary
    ]
    found = relationships(records, golden_of)
    # the full name fits one; the short one fits the group
    assert list(found.found) == [("G2", "G4", "contact_of")]
    assert found.ambiguous_employers == 1
    # the first words of a name, not any part of it
    alone = relationships(
        [*records[:1], (("crm", "A5"), _org("Grand Provenceservice"))],
        golden_of | {("crm", "A5"): "G5"},
    )
    assert alone.found == {}
    assert alone.unknown_employers == 1


def test_an_employer_that_names_no_company_states_nothing() -> None:
    golden_of = {("service", "S1"): "G1", ("crm", "A1"): "G2"}
    records = [(("service", "S1"), _person(employer="SAS")), (("crm", "A1"), _org("Sas Group"))]
    found = relationships(records, golden_of)
    assert found.found == {}
    assert (found.ambiguous_employers, found.unknown_employers) == (0, 0)


def test_employer_names_are_matched_only_when_asked_and_only_for_people() -> None:
    golden_of = {("service", "S1"): "G1", ("crm", "A1"): "G2", ("crm", "A3"): "G3"}
    records = [
        (("service", "S1"), _person(employer="Acme")),
        (("crm", "A3"), _org("Globex") | {"employer": "Acme"}),  # not a person
        (("crm", "A1"), _org("Acme")),
    ]
    assert relationships(records, golden_of, by_name=False).found == {}
    assert list(relationships(records, golden_of).found) == [("G1", "G2", "contact_of")]
    # a person in the organization's own customer is no relationship
    assert relationships(records, golden_of | {("service", "S1"): "G2"}).found == {}


def test_a_contact_without_an_employer_of_its_own_takes_its_accounts_name() -> None:
    records = [
        (("crm", "C1"), _person(account_ref="A1")),
        (("crm", "C2"), _person(account_ref="A1", employer="Initech")),  # its own wins
        (("crm", "C3"), _person(account_ref="A9")),  # an account not held
        (("erp", "C4"), _person(account_ref="A1")),  # A1 in the ERP is another record
        (("crm", "A1"), _org("Globex Ltd")),
        (("crm", "A2"), _org("Umbrella") | {"account_ref": "A1"}),  # not a person
    ]
    assert referenced_employers(records) == {("crm", "C1"): "Globex Ltd"}


# ---- parents by tax id: an organization names its parent's tax id, another system holds it


def _firm(tax_id: str = "", parent_tax_id: str = "") -> dict[str, str]:
    data = _org("Firm")
    if tax_id:
        data["tax_id"] = tax_id
    if parent_tax_id:
        data["parent_tax_id"] = parent_tax_id
    return data


def test_a_parents_tax_id_states_a_subsidiary_of_the_customer_holding_it() -> None:
    # the ERP names the group parent's VAT id; the CRM and billing hold the parent
    golden_of = {("erp", "E1"): "G1", ("crm", "A1"): "G2", ("billing", "B7"): "G2"}
    found = relationships(
        [
            (("erp", "E1"), _firm(tax_id="DE111111111", parent_tax_id="DE123456789")),
            (("crm", "A1"), _firm(tax_id="DE123456789")),
            (("billing", "B7"), _firm(tax_id="DE123456789")),
        ],
        golden_of,
    )
    assert found.found == {
        ("G1", "G2", "subsidiary_of"): [
            {
                "system": "erp",
                "source_id": "E1",
                "field": "parent_tax_id",
                "tax_id": "DE123456789",
                "matched_system": "billing",  # the smallest key of the parent's holders
                "matched_source_id": "B7",
            }
        ]
    }
    assert (found.ambiguous_parent_tax_ids, found.unknown_parent_tax_ids) == (0, 0)
    # with employer names left out too: a tax id is matched whatever `by_name` says
    assert relationships(
        [
            (("erp", "E1"), _firm(parent_tax_id="DE123456789")),
            (("crm", "A1"), _firm(tax_id="DE123456789")),
        ],
        golden_of,
        by_name=False,
    ).found.keys() == {("G1", "G2", "subsidiary_of")}


def test_a_parents_tax_id_that_several_customers_hold_or_none_is_not_guessed() -> None:
    golden_of = {
        ("erp", "E1"): "G1",
        ("erp", "E2"): "G2",
        ("crm", "A1"): "G3",
        ("billing", "B1"): "G4",  # the same tax id in another customer
    }
    found = relationships(
        [
            (("erp", "E1"), _firm(parent_tax_id="DE123456789")),
            (("erp", "E2"), _firm(parent_tax_id="ATU99999999")),
            (("crm", "A1"), _firm(tax_id="DE123456789")),
            (("billing", "B1"), _firm(tax_id="DE123456789")),
        ],
        golden_of,
    )
    assert found.found == {}
    assert (found.ambiguous_parent_tax_ids, found.unknown_parent_tax_ids) == (1, 1)


def test_a_parents_tax_id_held_by_its_own_customer_is_no_relationship() -> None:
    records = [
        (("erp", "E1"), _firm(parent_tax_id="DE123456789")),
        (("crm", "A1"), _firm(tax_id="DE123456789")),
    ]
    # matching put the subsidiary's record with the parent's: nothing to say
    inside = relationships(records, {("erp", "E1"): "G1", ("crm", "A1"): "G1"})
    assert inside.found == {}
    assert (inside.ambiguous_parent_tax_ids, inside.unknown_parent_tax_ids) == (0, 0)
    # held by its own customer and another: ambiguous, not a guess at the other
    both = relationships(
        [*records, (("billing", "B1"), _firm(tax_id="DE123456789"))],
        {("erp", "E1"): "G1", ("crm", "A1"): "G1", ("billing", "B1"): "G2"},
    )
    assert both.found == {}
    assert both.ambiguous_parent_tax_ids == 1


def test_only_organizations_name_parents_and_only_organizations_are_parents() -> None:
    golden_of = {("erp", "P1"): "G1", ("erp", "P2"): "G2", ("crm", "A1"): "G3"}
    found = relationships(
        [
            # a person naming a parent's tax id, and a person holding one
            (("erp", "P1"), _person(parent_tax_id="DE123456789")),
            (("erp", "P2"), _person(tax_id="DE987654321")),
            (("crm", "A1"), _firm(parent_tax_id="DE987654321")),
        ],
        golden_of,
    )
    assert found.found == {}
    assert found.unknown_parent_tax_ids == 1  # the firm's: no organization holds it


def test_a_subsidiary_by_tax_id_follows_its_parents_records_when_they_merge() -> None:
    records = [
        (("erp", "E1"), _firm(parent_tax_id="DE123456789")),
        (("crm", "A1"), _firm(tax_id="DE123456789")),
        (("crm", "A2"), _firm(tax_id="DE555555555")),
    ]
    before = relationships(records, {("erp", "E1"): "G1", ("crm", "A1"): "G2", ("crm", "A2"): "G3"})
    # the parent's record merges into G3: the relationship follows it, same evidence
    after = relationships(records, {("erp", "E1"): "G1", ("crm", "A1"): "G3", ("crm", "A2"): "G3"})
    [(edge, evidence)] = before.found.items()
    assert edge == ("G1", "G2", "subsidiary_of")
    assert after.found == {("G1", "G3", "subsidiary_of"): evidence}
    assert evidence[0]["matched_source_id"] == "A1"


def test_a_full_resolve_keeps_what_parents_by_tax_id_need_and_no_more() -> None:
    organization = _firm(tax_id="DE123456789", parent_tax_id="DE987654321")
    assert stating(organization | {"city": "Bonn", "email": "x@y.de"}) == organization
    # an organization known by its tax id alone is kept: it may be someone's parent
    assert stating({"kind": "organization", "tax_id": "DE123456789"}) is not None
    # a person's tax id or parent's tax id is not (people are neither parents nor groups)
    assert stating(_person(tax_id="DE123456789", parent_tax_id="DE987654321")) is None
    assert stating(_person(employer="Acme", tax_id="DE123456789")) == {
        "kind": "person",
        "employer": "Acme",
    }


_MAPPERS: dict[str, RecordMapper] = {}


def _mapped(system: str, row: dict[str, str]) -> MappedRecord:
    """A row through the demo project's mapping of `system`."""
    if system not in _MAPPERS:
        project = load_project(DEMO_PROJECT)
        _MAPPERS[system] = RecordMapper(project.mapping(system), project.config.systems[system])
    result = _MAPPERS[system].map(row)
    assert isinstance(result, MappedRecord), result
    return result


def test_an_invalid_parents_tax_id_is_flagged_like_a_tax_id_and_states_nothing() -> None:
    subsidiary = _mapped("erp", erp_row(KTOKD="FIRM", NAME1="Acme Logistik", ZZ_PARENT_STCEG="n/a"))
    assert "parent_tax_id" not in subsidiary.data
    assert [(r.code, r.field) for r in subsidiary.issues] == [("tax_id.invalid", "parent_tax_id")]
    parent = _mapped("crm", crm_row("A1", RecordType="Account", AccountName="Acme", VatNumber="NA"))
    golden_of = {("erp", "1"): "G1", ("crm", "A1"): "G2"}
    found = relationships(
        [(("erp", "1"), subsidiary.data), (("crm", "A1"), parent.data)], golden_of
    )
    assert found.found == {}
    assert found.unknown_parent_tax_ids == 0  # nothing was stated
    # a person's row in the ERP does not carry it
    person = _mapped("erp", erp_row(ZZ_PARENT_STCEG="DE123456789"))
    assert "parent_tax_id" not in person.data


_SEPARATOR = st.sampled_from(["", "", " ", ".", "-", "/", "  "])


@st.composite
def _vat_spellings(draw: st.DrawFn) -> tuple[str, str, str]:
    """A VAT id and two ways people type it: separators anywhere, any case."""
    prefix = draw(st.sampled_from(["DE", "ATU", "GB", "FR", "NL", "BE"]))
    number = prefix + draw(st.text("0123456789", min_size=8, max_size=11))
    if prefix == "NL":
        number += "B01"

    def spelled() -> str:
        out = [draw(st.sampled_from([ch.upper(), ch.lower()])) + draw(_SEPARATOR) for ch in number]
        return draw(_SEPARATOR) + "".join(out)

    return number, spelled(), spelled()


@given(_vat_spellings())
def test_a_parents_tax_id_meets_its_parent_however_either_system_spells_it(
    vat: tuple[str, str, str],
) -> None:
    number, in_erp, in_crm = vat
    subsidiary = _mapped(
        "erp", erp_row(KTOKD="FIRM", NAME1="Acme Logistik", ZZ_PARENT_STCEG=in_erp)
    )
    parent = _mapped(
        "crm", crm_row("A1", RecordType="Account", AccountName="Acme", VatNumber=in_crm)
    )
    assert subsidiary.data["parent_tax_id"] == parent.data["tax_id"] == number
    found = relationships(
        [(("erp", "1"), subsidiary.data), (("crm", "A1"), parent.data)],
        {("erp", "1"): "G1", ("crm", "A1"): "G2"},
    )
    assert list(found.found) == [("G1", "G2", "subsidiary_of")]


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


def _measured(
    data: Path, stored: dict[tuple[str, str, str], Any], engine: Engine
) -> tuple[tuple[float, float], tuple[float, float], dict[str, Counter[bool]]]:
    # measured against the generator's ground truth, twice. Inference: is what each
    # piece of evidence says (this record's party is a contact of that record's party)
    # true, and is each true relationship said by some evidence? (Also per field: how
    # many pieces of evidence of each were true.)
    party = read_truth(data / "truth.csv")
    true_pairs = set()
    with (data / "truth_relationships.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            true_pairs.add((row["from_party_id"], row["to_party_id"], row["relationship"]))
    said: Counter[bool] = Counter()
    by_field: dict[str, Counter[bool]] = defaultdict(Counter)
    found_pairs = set()
    for (_, _, kind), evidence in stored.items():
        for e in evidence:
            # the record an employer name or a parent's tax id was matched to, or the
            # record a reference names
            other = (
                (e["matched_system"], e["matched_source_id"])
                if "matched_system" in e
                else (e["system"], e["ref"])
            )
            pair = (party[(e["system"], e["source_id"])], party[other], kind)
            said[pair in true_pairs] += 1
            by_field[e["field"]][pair in true_pairs] += 1
            found_pairs.add(pair)
    loaded = set(party.values())
    reachable = {p for p in true_pairs if p[0] in loaded and p[1] in loaded}
    inference = (said[True] / sum(said.values()), len(found_pairs & reachable) / len(reachable))
    # Customers: the same between golden customers (each party's main one), which also
    # counts what matching split or merged
    main = _golden_of_parties(engine, data)
    truth = set()
    for a_party, b_party, kind in true_pairs:
        a, b = main.get(a_party), main.get(b_party)
        if a and b and a != b:
            truth.add((a, b, kind))
    correct = len(truth & stored.keys())
    by_customer = (correct / len(stored), correct / len(truth))
    return inference, by_customer, by_field


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

    inference, by_customer, by_field = _measured(data, stored, ws.engine)
    assert inference[0] >= 0.97
    assert inference[1] >= 0.9  # the CRM's references and the service desk's company names
    assert by_customer[0] >= 0.9
    assert by_customer[1] >= 0.85
    # the ERP's parents' VAT ids, matched to the records holding them, in other systems
    # too: each names the true parent
    assert by_field["parent_tax_id"][True] > 0
    assert by_field["parent_tax_id"][False] == 0
    assert any(
        e["matched_system"] != "erp"
        for evidence in stored.values()
        for e in evidence
        if e["field"] == "parent_tax_id"
    )

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

    # `accord show` says which contacts were found by company name
    by_name = next(
        edge for edge, evidence in stored.items() if any(e["field"] == "employer" for e in evidence)
    )
    shown = CliRunner().invoke(app, ["show", str(project), by_name[0]], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "contact of" in shown.output
    # (a narrow console wraps a cell's words onto two lines: test them, not the layout)
    assert "(company" in shown.output and "name)" in shown.output
    # and which subsidiaries by their parent's tax id
    by_tax_id = next(
        edge
        for edge, evidence in stored.items()
        if any(e["field"] == "parent_tax_id" for e in evidence)
    )
    shown = CliRunner().invoke(app, ["show", str(project), by_tax_id[1]], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "parent of" in shown.output
    assert "(parent's" in shown.output and "tax id)" in shown.output
