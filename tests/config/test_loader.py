"""Project files: every problem reported at once, each with file, line and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.config import load_project
from accord.config.scaffold import scaffold
from accord.errors import Conflict, ProjectInvalid


def _problems(root: Path) -> list[str]:
    with pytest.raises(ProjectInvalid) as caught:
        load_project(root)
    return [str(p) for p in caught.value.problems]


def test_the_demo_and_the_scaffold_are_valid(demo_project_dir: Path, tmp_path: Path) -> None:
    assert set(load_project(demo_project_dir).mappings) == {"crm", "erp", "billing", "service"}
    scaffold(tmp_path / "new")
    assert set(load_project(tmp_path / "new").mappings) == {"crm"}


def test_scaffold_refuses_to_overwrite(tmp_path: Path) -> None:
    scaffold(tmp_path)
    with pytest.raises(Conflict):
        scaffold(tmp_path)
    scaffold(tmp_path, force=True)


def test_every_problem_is_reported_with_file_line_and_hint(demo_project_dir: Path) -> None:
    project_file = demo_project_dir / "accord.yaml"
    text = project_file.read_text()
    text = text.replace("    trust: 0.7\n", "    trust: high\n    colour: blue\n", 1)
    project_file.write_text(text)
    mapping = demo_project_dir / "mappings" / "crm.yaml"
    mapping.write_text(mapping.read_text().replace("  email: Email", "  e_mail: Email"))

    problems = _problems(demo_project_dir)

    assert len(problems) == 3, problems
    trust, colour, unknown_field = problems
    assert "accord.yaml:11: systems.crm.trust: Input should be a valid number" in trust
    assert "accord.yaml:12: unknown key 'systems.crm.colour'" in colour
    assert "hint: allowed here: authority, default_region, deliver, description, health" in colour
    assert "crm.yaml:" in unknown_field
    assert "'e_mail' is not a canonical field" in unknown_field
    assert "did you mean 'email'?" in unknown_field


def test_references_to_unknown_systems(demo_project_dir: Path) -> None:
    # Cross-references are checked once the file's types are right.
    project_file = demo_project_dir / "accord.yaml"
    project_file.write_text(
        project_file.read_text().replace(
            "default_priority: [erp, billing, crm, service]",
            "default_priority: [erp, billing, crm, sap]",
        )
    )
    lines = project_file.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "crm, sap]" in text)
    problems = _problems(demo_project_dir)
    assert len(problems) == 1
    assert f"accord.yaml:{line}: 'sap' is not a system of this project" in problems[0]
    assert "hint: known systems: billing, crm, erp, service" in problems[0]


def test_unknown_key_suggests_the_close_one(demo_project_dir: Path) -> None:
    mapping = demo_project_dir / "mappings" / "billing.yaml"
    mapping.write_text(
        mapping.read_text().replace("source_id: account_id", "source_idd: account_id")
    )
    problems = _problems(demo_project_dir)
    assert any(
        "unknown key 'source_idd'" in p and "did you mean 'source_id'?" in p for p in problems
    ), problems
    assert any("source_id: required, but missing" in p for p in problems)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("project: [unclosed\n", "accord.yaml:2: not valid YAML: expected ',' or ']'"),
        ("", "accord.yaml: file is empty"),
        ("- a list\n", "expected a mapping"),
        ("project: x\nproject: y\n", "not valid YAML"),  # duplicate keys are an error
    ],
)
def test_broken_yaml_is_reported_not_raised(
    demo_project_dir: Path, content: str, expected: str
) -> None:
    (demo_project_dir / "accord.yaml").write_text(content)
    assert any(expected in p for p in _problems(demo_project_dir))


def test_vocabulary_translations_are_checked(demo_project_dir: Path) -> None:
    mapping = demo_project_dir / "mappings" / "billing.yaml"
    mapping.write_text(mapping.read_text().replace("cancelled: churned", "cancelled: gone"))
    problems = _problems(demo_project_dir)
    assert any("'gone' is not in the vocabulary of lifecycle_status" in p for p in problems)


def test_a_mapping_for_an_undeclared_system(demo_project_dir: Path) -> None:
    (demo_project_dir / "mappings" / "sap.yaml").write_text(
        "system: sap\nsource_id: id\nfields:\n  kind: {value: person}\n"
    )
    problems = _problems(demo_project_dir)
    assert any("sap.yaml:1" in p and "not declared in accord.yaml" in p for p in problems)


def test_two_authorities_for_one_field(demo_project_dir: Path) -> None:
    project_file = demo_project_dir / "accord.yaml"
    project_file.write_text(
        project_file.read_text().replace("authority: [email]", "authority: [email, tax_id]")
    )
    problems = _problems(demo_project_dir)
    assert any("'tax_id' already has 'erp' as its authority" in p for p in problems)


def test_missing_project_file(tmp_path: Path) -> None:
    assert any("no accord.yaml here" in p for p in _problems(tmp_path))


def test_project_digest_changes_with_any_file(demo_project_dir: Path) -> None:
    before = load_project(demo_project_dir)
    mapping = demo_project_dir / "mappings" / "service.yaml"
    mapping.write_text(mapping.read_text() + "\n# a comment\n")
    after = load_project(demo_project_dir)
    assert before.digest != after.digest
    assert before.mappings["service"].version != after.mappings["service"].version
    assert before.mappings["crm"].version == after.mappings["crm"].version


def _with_deliver(root: Path, block: str) -> None:
    """`block` as billing's deliver block (billing is the authority for email)."""
    project_file = root / "accord.yaml"
    anchor = "    authority: [email]\n"
    text = project_file.read_text()
    assert anchor in text
    project_file.write_text(text.replace(anchor, anchor + block, 1))


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            (
                "      sql: {url_env: BILLING_DB, table: accounts}\n"
                "      http: {url: 'http://billing.internal'}\n"
            ),
            "give exactly one channel (found http, sql): `http`",
        ),
        ("", "give exactly one channel: `http` (a REST API"),
        (
            "      sql: {table: accounts}\n",
            "systems.billing.deliver.sql.url_env: required, but missing",
        ),
        (
            "      sql: {url_env: BILLING_DB, table: 'accounts; DROP TABLE x'}\n",
            "systems.billing.deliver.sql.table: String should match pattern",
        ),
        (
            "      sql: {url_env: 'postgresql://u:p@h/db', table: accounts}\n",
            "systems.billing.deliver.sql.url_env: String should match pattern",
        ),
        (
            (
                "      sql: {url_env: BILLING_DB, table: accounts, version: rev}\n"
                "      fields: {rev: phone}\n"
            ),
            "fields: rev is a column the sql channel keeps itself",
        ),
        (
            "      file: {folder: exports, format: xml}\n",
            "systems.billing.deliver.file.format: Input should be 'csv' or 'jsonl'",
        ),
        ("      file: {format: csv}\n", "systems.billing.deliver.file.folder: required"),
        (
            "      file: {folder: exports, format: csv}\n      fields: {change_id: phone}\n",
            "fields: change_id would repeat a column every export row has",
        ),
    ],
)
def test_a_bad_sql_or_file_delivery_is_a_clear_problem(
    demo_project_dir: Path, block: str, expected: str
) -> None:
    fields = "" if "fields:" in block else "      fields: {phone: phone}\n"
    _with_deliver(demo_project_dir, "    deliver:\n" + block + fields)
    problems = _problems(demo_project_dir)
    assert len(problems) == 1, problems
    assert expected in " ".join(problems[0].split()), problems[0]


def test_sql_and_file_deliveries_load(demo_project_dir: Path) -> None:
    _with_deliver(
        demo_project_dir,
        "    deliver:\n"
        "      sql: {url_env: BILLING_DB, schema: billing, table: accounts, deleted: gone}\n"
        "      fields: {phone: phone}\n",
    )
    deliver = load_project(demo_project_dir).config.systems["billing"].deliver
    assert deliver is not None and deliver.sql is not None
    assert (deliver.sql.schema_, deliver.sql.key, deliver.sql.version) == (
        "billing",
        "id",
        "version",
    )
    assert deliver.sql.columns() == ["id", "version", "gone"]
