"""`accord quarantine ...` and `accord loads ...` end to end on a SQLite store in the
project folder."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import run as _run
from tests.factories import crm_row, write_csv


def test_quarantine_and_loads_commands(demo_project_dir: Path, tmp_path: Path) -> None:
    project = demo_project_dir
    crm = write_csv(tmp_path / "crm.csv", [crm_row("C1"), crm_row("C2", FirstName="", LastName="")])
    _run("load", project, "-s", "crm", crm)
    listed = _run("quarantine", "list", project, "--reason", "name.missing")
    assert "crm.csv line 3" in listed and "name.missing" in listed
    shown = json.loads(_run("quarantine", "show", project, "1", "--json"))
    assert shown["source_id"] == "C2"
    assert "FIELD=VALUE" in _run("quarantine", "correct", project, "1", "--set", "oops", code=2)
    assert "NUL" in _run("quarantine", "correct", project, "1", "--set", "LastName=a\x00", code=1)
    assert "corrected" in _run("quarantine", "correct", project, "1", "--set", "LastName=Schmidt")
    assert "--all" in _run("quarantine", "replay", project, code=1)
    replayed = _run("quarantine", "replay", project, "--all", "-s", "crm")
    assert "Replayed" in replayed
    assert "is replayed" in _run("quarantine", "replay", project, "1", code=1)
    assert "nothing open" in _run("quarantine", "replay", project, "--all")

    assert "replay" in _run("loads", "list", project)
    withdrawn = _run("loads", "withdraw", project, "1", "--yes")
    assert "Withdrawn" in withdrawn and "accord resolve" in withdrawn
    assert "withdrawn already" in _run("loads", "withdraw", project, "1", "--yes", code=1)
    assert "Withdrawn" in _run("loads", "show", project, "1")
    assert "no load 99" in _run("loads", "show", project, "99", code=1)
