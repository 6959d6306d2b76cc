"""`accord status` and monitoring keys, end to end on a real SQLite store in the project
folder: exit 0 when no alert fires, 3 when one does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accord.govern import identity
from accord.govern.permissions import Role
from accord.workspace import open_workspace
from tests.cli.helpers import run as _run
from tests.factories import crm_row, write_csv

CRM = "    health: {max_error_rate: 0.6, in: {max_backlog: 0}}\n"


@pytest.fixture
def project(demo_project_dir: Path) -> Path:
    config = demo_project_dir / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("    default_region: GB\n", "    default_region: GB\n" + CRM))
    return demo_project_dir


def test_status_exits_3_while_an_alert_fires_and_0_once_none_does(
    project: Path, tmp_path: Path
) -> None:
    rows = [crm_row("C1"), crm_row("C2", BirthDate="1985-13-45")]
    _run("load", project, "--system", "crm", write_csv(tmp_path / "crm.csv", rows))

    waiting = _run("status", project, code=3)
    as_json = json.loads(_run("status", project, "--json", code=3))
    _run("resolve", project)  # matches the record waiting
    settled = _run("status", project)

    assert "alert: crm in: backlog 1 over 0" in waiting
    assert "In: records from each system" in waiting
    assert as_json["alerts"] == [
        {
            "system": "crm",
            "direction": "in",
            "check": "backlog",
            "value": 1,
            "threshold": 0,
            "message": "crm in: backlog 1 over 0",
        }
    ]
    crm = next(s for s in as_json["in"] if s["system"] == "crm")
    assert crm["received"] == {"1h": 2, "1d": 2}
    assert crm["error_rate"] == {"1h": 0.5, "1d": 0.5}  # under 0.6
    assert (crm["backlog"], crm["failed"]) == (1, 0)
    assert (crm["matched"], crm["golden_latency_seconds"]) == ({"1h": 0}, None)
    after = json.loads(_run("status", project, "--json"))
    crm = next(s for s in after["in"] if s["system"] == "crm")
    assert crm["matched"] == {"1h": 1}  # the resolve matched it from the queue
    assert set(crm["golden_latency_seconds"]) == {"p50", "p95", "p99"}
    assert "no alert fires (2 thresholds checked)" in settled
    assert "alert:" not in settled


def test_status_exits_0_with_no_alert(demo_project_dir: Path) -> None:
    output = _run("status", demo_project_dir)

    assert "no alert fires (0 thresholds checked)" in output


def test_a_monitoring_key_is_created_with_a_name(project: Path) -> None:
    output = _run("keys", "create", project, "--role", "monitor", "--name", "prometheus")
    secret = output.strip().splitlines()[-1]

    workspace = open_workspace(project)
    with workspace.engine.connect() as conn:
        actor = identity.actor_for_api_key(conn, secret)
    assert (actor.name, actor.role) == ("prometheus", Role.MONITOR)
    assert "give --name, not --system" in _run(
        "keys", "create", project, "--role", "monitor", "--system", "crm", code=1
    )
    assert "carries the role system or monitor, not admin" in _run(
        "keys", "create", project, "--role", "admin", "--name", "root", code=1
    )
    assert "give --system" in _run("keys", "create", project, code=1)
