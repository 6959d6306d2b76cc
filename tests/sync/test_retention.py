"""Pruning sync out (`accord sync prune`, accord.sync.retention): sent deliveries and the
outbox changes no target needs go; what a target still needs stays; a target configured
after its changes were pruned starts from a snapshot of the customers; on both stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from accord.store import outbox
from accord.store.tables import golden_change, sync_delivery
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, bob_row
from tests.sync.helpers import (
    deliver,
    golden_data,
    load,
    with_billing_delivery,
    with_service_delivery,
)


def _exports(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _filing(engine: Engine, root: Path, fields: str) -> Workspace:
    """Billing delivered to export files (JSON Lines under exports/billing)."""
    return with_billing_delivery(
        engine,
        root,
        "    deliver:\n"
        "      file: {folder: exports/billing, format: jsonl}\n"
        f"      fields: {fields}\n",
    )


def _prune(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from accord.cli import sync as sync_cli  # noqa: PLC0415
    from accord.cli.main import app  # noqa: PLC0415

    monkeypatch.setattr(sync_cli, "open_workspace", lambda _root: workspace)
    return CliRunner().invoke(app, ["sync", "prune", str(workspace.root), *args])


def test_pruned_history_is_gone_and_a_later_target_starts_from_a_snapshot(
    engine: Engine, demo_project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = _filing(
        engine, demo_project_dir, "{first_name: given_name, phone: phone, town: city}"
    )
    rows = anna_chain_and_bob()
    load(workspace, tmp_path, rows, "a.csv")
    load(workspace, tmp_path, [*rows[:-1], bob_row(phone="+49 89 7777777")], "b.csv")
    customers = golden_data(workspace)
    assert deliver(workspace)["sent"] == len(customers) + 1
    history = _count(engine, golden_change)

    kept = _prune(workspace, monkeypatch, "--older-than", "1d", "--json")
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.output)["changes_removed"] == 0  # all younger than a day
    pruned = _prune(workspace, monkeypatch, "--older-than", "0s", "--json")
    assert pruned.exit_code == 0, pruned.output
    report = json.loads(pruned.output)
    # every sent delivery goes, and every change but the newest (ids never come back)
    assert (report["deliveries_removed"], report["changes_removed"]) == (history, history - 1)
    assert report["held_back_by"] == "billing" and report["never_ran"] == []
    assert (_count(engine, golden_change), _count(engine, sync_delivery)) == (1, 0)

    # billing goes on as before
    load(workspace, tmp_path, [*rows[:-1], bob_row(phone="+49 89 1111111")], "c.csv")
    assert deliver(workspace)["sent"] == 1

    # the service desk is configured now: its history is gone, so a snapshot
    workspace = with_service_delivery(
        engine,
        demo_project_dir,
        "    deliver:\n"
        "      file: {folder: exports/service, format: jsonl}\n"
        "      fields: {first_name: given_name, phone: phone}\n",
    )
    assert deliver(workspace, "service")["sent"] == len(customers)
    exported = _exports(demo_project_dir / "exports" / "service")
    now = golden_data(workspace)
    assert sorted(r["golden_id"] for r in exported) == sorted(now)
    assert all(r["change"] == "repair" for r in exported)
    assert {r["golden_id"]: r["fields"]["phone"] for r in exported} == {
        gid: data["phone"] for gid, data in now.items()
    }
    with engine.connect() as conn:
        assert outbox.cursor(conn, "service") >= outbox.pruned_to(conn)
    assert deliver(workspace, "service")["taken"] == 0  # the snapshot is taken once


def test_a_target_behind_holds_the_outbox_and_a_bad_retention_is_refused(
    engine: Engine, demo_project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = _filing(engine, demo_project_dir, "{first_name: given_name, phone: phone}")
    load(workspace, tmp_path, anna_chain_and_bob(), "a.csv")
    never = _prune(workspace, monkeypatch, "--older-than", "0s", "--json")
    assert never.exit_code == 0, never.output
    report = json.loads(never.output)
    # billing never ran: it does not hold pruning back, and will start from a snapshot
    assert report["never_ran"] == ["billing"] and report["changes_removed"] == (
        len(golden_data(workspace)) - 1
    )
    assert deliver(workspace)["sent"] == len(golden_data(workspace))

    bad = _prune(workspace, monkeypatch, "--older-than", "a month")
    assert bad.exit_code != 0
    assert "--older-than" in bad.output and "is not a duration" in bad.output
