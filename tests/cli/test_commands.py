"""The command line, end to end on a real SQLite store in the project folder."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from accord.cli.main import app
from tests.cli.helpers import run as _run
from tests.cli.helpers import runner
from tests.factories import billing_row, crm_row, write_csv, write_jsonl


def test_init_then_validate(tmp_path: Path) -> None:
    project = tmp_path / "acme"
    assert "wrote" in _run("init", project)
    assert "ok" in _run("validate", project)
    assert "exists already" in _run("init", project, code=1)


def test_validate_lists_every_problem_and_exits_1(demo_project_dir: Path) -> None:
    (demo_project_dir / "mappings" / "crm.yaml").write_text(
        "system: crm\nsource_id: Id\nbogus: 1\nfields:\n  kind: {value: alien}\n  phon: Phone\n"
    )
    output = _run("validate", demo_project_dir, code=1)
    assert "the project has 3 problems" in output
    assert "crm.yaml:3: unknown key 'bogus'" in output
    assert "'alien' is not in the vocabulary of kind" in output
    assert "did you mean 'phone'?" in output


def test_load_resolve_show_search(demo_project_dir: Path, tmp_path: Path) -> None:
    crm = write_csv(tmp_path / "crm.csv", [crm_row("C1"), crm_row("", FirstName="x")])
    billing = write_jsonl(tmp_path / "b.jsonl.gz", [billing_row("B1")], gzipped=True)
    assert "crm.csv" in _run("load", demo_project_dir, "--system", "crm", crm)
    _run("load", demo_project_dir, "-s", "billing", billing)
    assert "golden records" in _run("resolve", demo_project_dir)

    shown = json.loads(_run("show", demo_project_dir, "C0000001", "--json"))
    assert {m["system"] for m in shown["members"]} == {"crm", "billing"}
    assert shown["lineage"]["email"]["system"] == "billing"  # billing is email's authority
    text = _run("show", demo_project_dir, "C0000001")
    assert "Values and lineage" in text and "billing/B1" in text
    assert "1 customers" in _run("search", demo_project_dir, "schmidt")
    assert "no customer 'C0000404'" in _run("show", demo_project_dir, "C0000404", code=1)


def test_load_errors_are_explained(demo_project_dir: Path, tmp_path: Path) -> None:
    assert "no system named 'sap'" in _run(
        "load", demo_project_dir, "-s", "sap", tmp_path / "x.csv", code=1
    )
    assert "no file at" in _run("load", demo_project_dir, "-s", "crm", tmp_path / "x.csv", code=1)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert "empty.csv is empty" in _run("load", demo_project_dir, "-s", "crm", empty, code=1)


def test_audit_verify_catches_a_tampered_row(demo_project_dir: Path, tmp_path: Path) -> None:
    crm = write_csv(tmp_path / "crm.csv", [crm_row("C1"), crm_row("C2", Email="z@x.org")])
    _run("load", demo_project_dir, "-s", "crm", crm)
    _run("resolve", demo_project_dir)
    assert "the chain is intact" in _run("audit", "verify", demo_project_dir)

    database = demo_project_dir / ".accord" / "accord.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE audit_log SET details = '{\"members\": 99}' WHERE seq = 3")
    output = _run("audit", "verify", demo_project_dir, code=1)
    assert "broken: entry 3: its content does not match its hash" in output


def test_users_and_keys(demo_project_dir: Path) -> None:
    result = runner.invoke(
        app,
        ["users", "add", str(demo_project_dir), "ann", "--role", "steward", "--password-stdin"],
        input="short\n",
    )
    assert result.exit_code == 1 and "at least 12 characters" in result.output
    for role in ("system", "monitor"):  # roles of API keys, never a person's
        refused = runner.invoke(
            app,
            ["users", "add", str(demo_project_dir), "bot", "--role", role, "--password-stdin"],
            input="a good long secret\n",
        )
        assert refused.exit_code == 1 and "accord keys create" in refused.output, role
    result = runner.invoke(
        app,
        ["users", "add", str(demo_project_dir), "ann", "--role", "steward", "--password-stdin"],
        input="a good long secret\n",
    )
    assert result.exit_code == 0, result.output
    key = _run("keys", "create", demo_project_dir, "--system", "crm").strip().splitlines()[-1]
    assert key.startswith("acc_crm_")
    database = (demo_project_dir / ".accord" / "accord.sqlite3").read_bytes()
    assert key.encode() not in database and b"a good long secret" not in database


def test_the_installed_command_runs() -> None:
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "accord"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0
    for command in ["init", "validate", "load", "resolve", "show", "audit", "demo"]:
        assert command in completed.stdout
