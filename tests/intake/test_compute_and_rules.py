"""Computed fields and business rules in a mapping: checked at project load with file,
line and expression; evaluated per record, a failure handled by the field's policy or
the rule's action, never stopping a batch; stored through the one load path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from accord.config import load_project
from accord.errors import ProjectInvalid
from accord.intake.load import load_file
from accord.intake.mapping import MappedRecord, RecordMapper, Rejected
from accord.store.tables import canonical_record, quarantine
from tests.factories import ERP_COLUMNS, erp_row, write_csv

ERP_MAPPING = """\
system: erp
source_id: KUNNR
format: {type: csv, delimiter: ";"}
fields:
  kind:
    from: KTOKD
    translate: {PERS: person, FIRM: organization}
  country: LAND1
  organization_name: {from: NAME1, only_for: organization}
  family_name: {from: NAME1, only_for: person}
  tax_id: STCEG
  employer:
    compute: "has(source.NAME2) ? source.NAME2 + ' (' + record.country + ')' : null"
    only_for: person
  birth_date:
    compute: "has(source.GEBDAT) ? source.GEBDAT.substring(6, 10) + '-01-01' : null"
  city:
    compute: "source.ORT01.upperAscii()"
rules:
  - name: org_needs_tax_id
    when: record.kind == 'organization'
    check: has(record.tax_id)
    message: an organization needs a VAT id
  - name: no_test_names
    check: "!has(record.family_name) || !record.family_name.startsWith('Test')"
    message: looks like a test record
    action: flag
"""


def _project(root: Path, mapping: str = ERP_MAPPING, project_rules: str = "") -> Path:
    (root / "mappings" / "erp.yaml").write_text(mapping, encoding="utf-8")
    if project_rules:
        config = root / "accord.yaml"
        text = config.read_text(encoding="utf-8")
        text = text[: text.index("\nrules:\n") + 1] + project_rules  # instead of the demo's
        config.write_text(text, encoding="utf-8")
    return root


def _mapper(root: Path) -> RecordMapper:
    project = load_project(root)
    return RecordMapper(project.mapping("erp"), project.config.systems["erp"])


def _problems(root: Path) -> list[str]:
    with pytest.raises(ProjectInvalid) as caught:
        load_project(root)
    return [str(p) for p in caught.value.problems]


def test_computed_fields_read_the_source_and_the_fields_mapped_before(
    demo_project_dir: Path,
) -> None:
    mapper = _mapper(_project(demo_project_dir))
    result = mapper.map(
        erp_row(NAME1="Müller", NAME2="Acme", GEBDAT="01.02.1960", ORT01="Köln city")
    )
    assert isinstance(result, MappedRecord), result
    assert result.data["employer"] == "Acme (DE)"  # `record.country`, mapped earlier
    assert result.data["birth_date"] == "1960-01-01"  # then standardized as a date
    assert result.data["city"] == "KöLN CITY"  # upperAscii leaves ö alone
    assert result.issues == ()


def test_a_failing_computation_follows_the_fields_policy(demo_project_dir: Path) -> None:
    mapper = _mapper(_project(demo_project_dir))
    # city: no ORT01 value -> the expression fails -> a string field is flagged
    flagged = mapper.map(erp_row(ORT01=""))
    assert isinstance(flagged, MappedRecord)
    assert "city" not in flagged.data
    [issue] = flagged.issues
    assert (issue.code, issue.field) == ("compute.failed", "city")
    assert "source.ORT01.upperAscii(): no value for 'ORT01'" in issue.message
    # birth_date: dates quarantine by default, whether the computation fails or
    # computes something that is no date
    failed = mapper.map(erp_row(GEBDAT="1.2.60"))
    no_date = mapper.map(erp_row(GEBDAT="01.02.ABCD"))
    assert isinstance(failed, Rejected)
    assert isinstance(no_date, Rejected)
    assert [(r.code, r.field) for r in failed.reasons] == [("compute.failed", "birth_date")]
    assert "out of range" in failed.reasons[0].message
    assert [(r.code, r.field) for r in no_date.reasons] == [("date.invalid", "birth_date")]


def test_rules_quarantine_or_flag_with_their_name_and_message(demo_project_dir: Path) -> None:
    mapper = _mapper(_project(demo_project_dir))
    firm = mapper.map(erp_row(KTOKD="FIRM", NAME1="Acme GmbH"))
    assert isinstance(firm, Rejected)
    assert [(r.code, r.message) for r in firm.reasons] == [
        ("rule.org_needs_tax_id", "an organization needs a VAT id")
    ]
    with_vat = mapper.map(erp_row(KTOKD="FIRM", NAME1="Acme GmbH", STCEG="DE123456789"))
    assert isinstance(with_vat, MappedRecord)
    test_person = mapper.map(erp_row(NAME1="Testperson", ORT01="Bonn"))
    assert isinstance(test_person, MappedRecord)
    assert [(i.code, i.message) for i in test_person.issues] == [
        ("rule.no_test_names", "looks like a test record")
    ]


def test_a_rule_that_cannot_be_evaluated_fails_and_says_why(demo_project_dir: Path) -> None:
    mapping = ERP_MAPPING.replace(
        "check: has(record.tax_id)", "check: record.tax_id.startsWith(record.country)"
    )
    mapper = _mapper(_project(demo_project_dir, mapping))
    result = mapper.map(erp_row(KTOKD="FIRM", NAME1="Acme GmbH", ORT01="Bonn"))
    assert isinstance(result, Rejected)
    [reason] = result.reasons
    assert reason.code == "rule.org_needs_tax_id"
    assert "(the rule could not be evaluated: no value for 'tax_id'" in reason.message


def test_project_rules_apply_to_every_system_and_change_every_mapping_version(
    demo_project_dir: Path,
) -> None:
    before = load_project(demo_project_dir)
    rule = (
        "rules:\n  - name: vat_needs_country\n    when: has(record.tax_id)\n"
        "    check: has(record.country)\n    message: a VAT id needs a country\n"
    )
    _project(demo_project_dir, ERP_MAPPING, rule)
    after = load_project(demo_project_dir)
    assert after.mapping("crm").version != before.mapping("crm").version
    assert after.mapping("crm").version.startswith("crm@")
    mapper = RecordMapper(after.mapping("erp"), after.config.systems["erp"])
    result = mapper.map(erp_row(NAME1="Lee", LAND1="", STCEG="DE123456789", ORT01="X"))
    assert isinstance(result, Rejected)
    assert [r.code for r in result.reasons] == ["rule.vat_needs_country"]
    # a mapping's own rules change its version too (the version hashes the file)
    changed = ERP_MAPPING.replace("looks like a test record", "a test record")
    assert load_project(_project(demo_project_dir, changed, "")).mapping("erp").version != (
        after.mapping("erp").version
    )


def test_bad_expressions_are_reported_with_file_line_field_and_expression(
    demo_project_dir: Path,
) -> None:
    mapping = (
        ERP_MAPPING.replace("source.ORT01.upperAscii()", "sourc.ORT01")
        .replace("check: has(record.tax_id)", "check: has(record.tax_id")
        .replace(
            "action: flag",
            "action: flag\n  - name: no_test_names\n    check: 'true'\n    message: m",
        )
        .replace("has(source.GEBDAT) ?", "eval(source.GEBDAT) ?")
    )
    problems = _problems(
        _project(
            demo_project_dir, mapping, "rules:\n  - name: r\n    check: source.x\n    message: m\n"
        )
    )
    joined = "\n".join(problems)
    assert len(problems) == 5, joined
    assert "erp.yaml:16: field birth_date `compute`: unknown function 'eval'" in joined
    assert "erp.yaml:18: field city `compute`: unknown name 'sourc'" in joined
    assert "in 'sourc.ORT01'" in joined
    assert "erp.yaml:22: rule org_needs_tax_id `check`: not a valid expression" in joined
    assert "rule 'no_test_names' appears twice" in joined
    assert "accord.yaml:" in joined and "rule r `check`: unknown name 'source'" in joined
    assert "hint: CEL expressions are described in docs/mappings.md" in joined


def test_a_field_takes_one_origin(demo_project_dir: Path) -> None:
    mapping = ERP_MAPPING.replace("  city:\n    compute:", "  city:\n    from: ORT01\n    compute:")
    [problem] = _problems(_project(demo_project_dir, mapping))
    assert "give exactly one of `from` (a source field), `value` (a constant) or `compute`" in (
        problem
    )


def test_an_overlong_expression_is_refused_at_load(demo_project_dir: Path) -> None:
    long = "source.ORT01" + " + source.ORT01" * 200
    [problem] = _problems(
        _project(demo_project_dir, ERP_MAPPING.replace("source.ORT01.upperAscii()", long))
    )
    assert "at most 2,000" in problem
    assert "..." in problem  # the expression is shortened in the message


_VALUE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "PERS", "FIRM", "01.02.1960", "DE", "Test", "0", "1e400"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(row=st.fixed_dictionaries(dict.fromkeys(ERP_COLUMNS, _VALUE)))
def test_random_rows_never_crash_the_mapper(demo_project_dir: Path, row: dict[str, Any]) -> None:
    root = demo_project_dir
    if not (root / "mappings" / "erp.yaml").read_text().startswith("system: erp\nsource_id"):
        _project(root)
    mapper = _mapper(root)
    result = mapper.map(row)
    assert isinstance(result, MappedRecord | Rejected)
    reasons = result.issues if isinstance(result, MappedRecord) else result.reasons
    assert all(r.code and r.message for r in reasons)


def test_a_load_stores_rule_verdicts_and_computed_fields(
    engine: Engine, demo_project_dir: Path, tmp_path: Path
) -> None:
    """Through the one load path, on SQLite and PostgreSQL: a rule's quarantine lands
    in quarantine with its code and message, a flag in the record's issues, a failing
    computation never stops the batch, and loading again stores nothing twice."""
    project = load_project(_project(demo_project_dir))
    rows = [
        erp_row(KUNNR="1", NAME1="Müller", NAME2="Acme", ORT01="Köln"),
        erp_row(KUNNR="2", KTOKD="FIRM", NAME1="Acme GmbH", ORT01="Bonn"),  # no VAT id
        erp_row(KUNNR="3", NAME1="Testuser", ORT01=""),  # flagged twice
    ]
    path = write_csv(tmp_path / "erp.csv", rows, delimiter=";")
    report = load_file(engine, project, "erp", path, actor="t")
    assert (report.new, report.quarantined, report.flagged) == (2, 1, 1)
    assert report.quarantine_reasons == {"rule.org_needs_tax_id": 1}
    with engine.connect() as conn:
        stored = {
            r.source_id: (r.data, [i["code"] for i in r.issues])
            for r in conn.execute(select(canonical_record))
        }
        [entry] = conn.execute(select(quarantine.c.source_id, quarantine.c.reasons)).all()
    assert stored["1"][0]["employer"] == "Acme (DE)"
    assert stored["1"][0]["city"] == "KöLN"
    assert stored["3"][1] == ["compute.failed", "rule.no_test_names"]
    assert entry.source_id == "2"
    assert entry.reasons == [
        {"code": "rule.org_needs_tax_id", "message": "an organization needs a VAT id"}
    ]
    again = load_file(engine, project, "erp", path, actor="t")
    assert (again.new, again.unchanged, again.already_quarantined) == (0, 2, 1)
