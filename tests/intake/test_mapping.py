"""The mapper on its own: source fields in, canonical data (or reasons) out."""

from __future__ import annotations

from pathlib import Path

from accord.config import load_project
from accord.intake.mapping import MappedRecord, RecordMapper, Rejected
from tests.factories import crm_row, erp_row


def _mapper(demo_project_dir: Path, system: str) -> RecordMapper:
    project = load_project(demo_project_dir)
    return RecordMapper(project.mapping(system), project.config.systems[system])


def test_persons_and_organizations_take_their_own_fields(demo_project_dir: Path) -> None:
    mapper = _mapper(demo_project_dir, "erp")
    person = mapper.map(erp_row())
    firm = mapper.map(
        erp_row(KTOKD="firm", NAME1="Müller Logistik G.m.b.H.", STCEG="DE 123 456 789")
    )
    assert isinstance(person, MappedRecord)
    assert isinstance(firm, MappedRecord)
    assert person.data == {
        "kind": "person",
        "country": "DE",
        "given_name": "Hans",
        "family_name": "Müller",
        "phone": "+49301234567",
        "birth_date": "1960-02-01",
    }
    assert firm.data["kind"] == "organization"  # "firm" translated ignoring case
    assert (firm.data["organization_name"], firm.data["legal_form"]) == ("Müller Logistik", "GmbH")
    assert firm.data["tax_id"] == "DE123456789"
    assert "given_name" not in firm.data


def test_invalid_contact_points_are_flagged_not_fixed(demo_project_dir: Path) -> None:
    result = _mapper(demo_project_dir, "erp").map(erp_row(SMTP_ADDR="hans at mueller", TELF1="12"))
    assert isinstance(result, MappedRecord)
    assert "email" not in result.data and "phone" not in result.data
    assert {(i.field, i.code.split(".")[0]) for i in result.issues} == {
        ("email", "email"),
        ("phone", "phone"),
    }


def test_unreadable_dates_and_unknown_words_reject_the_record(demo_project_dir: Path) -> None:
    mapper = _mapper(demo_project_dir, "erp")
    bad_date = mapper.map(erp_row(GEBDAT="31.02.1980"))
    unknown = mapper.map(erp_row(KTOKD="ALIEN"))
    assert isinstance(bad_date, Rejected)
    assert isinstance(unknown, Rejected)
    assert [r.code for r in bad_date.reasons] == ["date.invalid"]
    assert [r.code for r in unknown.reasons] == ["vocabulary.unknown"]
    assert "add it to `translate`" in unknown.reasons[0].message


def test_nested_json_paths_and_constants(demo_project_dir: Path) -> None:
    billing = _mapper(demo_project_dir, "billing").map(
        {
            "account_id": "B1",
            "customer_type": "consumer",
            "last_name": "Ng",
            "address": {"city": "  Leeds ", "country": "United Kingdom", "postal_code": "ls11ub"},
        }
    )
    service = _mapper(demo_project_dir, "service").map({"requester_id": "7", "name": "Dr. Ann Lee"})
    assert isinstance(billing, MappedRecord)
    assert isinstance(service, MappedRecord)
    assert billing.data["city"] == "Leeds"
    assert billing.data["postcode"] == "LS1 1UB"
    assert billing.data["country"] == "GB"
    assert service.data == {"kind": "person", "given_name": "Ann", "family_name": "Lee"}


def test_an_object_or_list_where_a_single_value_belongs_is_flagged_not_dropped(
    demo_project_dir: Path,
) -> None:
    """JSON input (pushed, or JSON Lines) can put structure where the mapping reads one
    value: the field is flagged (or quarantines the record, as its type says), never left
    out without a word."""
    crm = _mapper(demo_project_dir, "crm")
    flagged = crm.map(crm_row("C1", City={"name": "Berlin"}))  # type: ignore[arg-type]
    quarantined = crm.map(crm_row("C2", BirthDate=["1985-04-12", "1986-04-12"]))  # type: ignore[arg-type]
    assert isinstance(flagged, MappedRecord)
    assert "city" not in flagged.data
    assert [(r.code, r.field) for r in flagged.issues] == [("value.structured", "city")]
    assert "City holds an object" in flagged.issues[0].message
    assert isinstance(quarantined, Rejected)
    assert [(r.code, r.field) for r in quarantined.reasons] == [("value.structured", "birth_date")]
    assert "BirthDate holds a list" in quarantined.reasons[0].message
