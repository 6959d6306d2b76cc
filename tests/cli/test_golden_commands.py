"""`accord golden override|overrides`, end to end through the command line on a real
SQLite store in the project folder: pin, list, clear, and bad input answered with a
message and an exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import run as _run
from tests.factories import anna_chain_and_bob, write_csv


def _show(project: Path, golden_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(_run("show", project, golden_id, "--json"))
    return shown


def test_pin_list_and_clear(demo_project_dir: Path, tmp_path: Path) -> None:
    project = demo_project_dir
    _run("load", project, "--system", "crm", write_csv(tmp_path / "c.csv", anna_chain_and_bob()))
    _run("resolve", project)
    before = _show(project, "C0000001")["data"]["email"]

    out = _run(
        "golden", "override", project, "C0000001", "email", "Anna@Example.ORG",
        "--reason", "confirmed by phone",
    )  # fmt: skip
    assert "pinned to 'anna@example.org'" in out
    shown = _show(project, "C0000001")
    assert shown["data"]["email"] == "anna@example.org"
    assert shown["lineage"]["email"]["rule"] == "steward_override"
    _run("show", project, "C0000001")  # the table shows a value no source record holds
    listed = json.loads(_run("golden", "overrides", project, "--json"))
    assert [(o["golden_id"], o["field"], o["in_effect"]) for o in listed] == [
        ("C0000001", "email", True)
    ]
    assert "in effect" in _run("golden", "overrides", project, "C0000001")

    _run("resolve", project)  # a recompute keeps it
    assert _show(project, "C0000001")["data"]["email"] == "anna@example.org"

    out = _run("golden", "override", project, "C0000001", "email", "--clear")
    assert "cleared" in out
    assert _show(project, "C0000001")["data"]["email"] == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["email", "not-an-email", "--reason", "x"], "is not a valid email"),
        (["email", "a@x.org"], "an override needs a reason"),
        (["email"], "give a VALUE to pin, or --clear"),
        (["email", "a@x.org", "--clear"], "give a VALUE to pin, or --clear"),
        (["nickname", "Annie", "--reason", "x"], "'nickname' is not a field"),
    ],
)
def test_bad_overrides_are_refused(
    demo_project_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    _run(
        "load",
        demo_project_dir,
        "--system",
        "crm",
        write_csv(tmp_path / "c.csv", anna_chain_and_bob()),
    )
    _run("resolve", demo_project_dir)
    output = _run("golden", "override", demo_project_dir, "C0000001", *args, code=1)
    assert message in output
