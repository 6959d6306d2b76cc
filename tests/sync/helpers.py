"""What the sync tests share: a deliver block added to the demo project, records loaded
and resolved, the golden records, delivery until nothing is left."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from accord.golden.resolve import resolve
from accord.intake.load import load_file
from accord.settings import Settings
from accord.store.tables import golden_record
from accord.store.types import utcnow
from accord.sync.dispatch import run
from accord.workspace import Workspace
from tests.factories import write_csv

BILLING = "    authority: [email]\n"  # the billing system's last line before `deliver`
SERVICE = "    sync: realtime\n"  # the service desk's last line, the last system's

# billing's fields, the reverse of its mapping (billing is the authority for email)
BILLING_FIELDS = {
    "first_name": "given_name",
    "last_name": "family_name",
    "email_address": "email",
    "phone": "phone",
    "town": "city",
    "country": "country",
}


def with_billing_delivery(engine: Engine, root: Path, block: str) -> Workspace:
    """The project at `root` with `block` (the `deliver:` lines, indented four spaces)
    under the billing system."""
    config = root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    assert BILLING in text
    config.write_text(text.replace(BILLING, BILLING + block.lstrip("\n"), 1), encoding="utf-8")
    return Workspace(root, engine, Settings())


def with_service_delivery(engine: Engine, root: Path, block: str) -> Workspace:
    """The project at `root` with `block` (the `deliver:` lines, indented four spaces)
    under the service desk system (the last one, before `match:`)."""
    config = root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    anchor = SERVICE + "\nmatch:"
    assert anchor in text
    replaced = text.replace(anchor, SERVICE + block.lstrip("\n") + "\nmatch:", 1)
    config.write_text(replaced, encoding="utf-8")
    return Workspace(root, engine, Settings())


def load(workspace: Workspace, tmp_path: Path, rows: list[dict[str, str]], name: str) -> None:
    """Load CRM rows and resolve."""
    load_file(
        workspace.engine, workspace.project, "crm", write_csv(tmp_path / name, rows), actor="t"
    )
    resolve(workspace.engine, workspace.project, actor="test")


def golden_data(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """golden id -> data, of the active golden records."""
    with workspace.engine.connect() as conn:
        rows = conn.execute(golden_record.select().where(golden_record.c.status == "active")).all()
    return {r.golden_id: r.data for r in rows}


def expected_fields(data: dict[str, Any]) -> dict[str, Any]:
    """What billing should hold of a golden record (never email: billing owns it)."""
    return {
        field: data[canonical]
        for field, canonical in BILLING_FIELDS.items()
        if canonical != "email" and data.get(canonical)
    }


def deliver(workspace: Workspace, target: str = "billing", seconds: float = 60) -> dict[str, Any]:
    """Deliver to `target` until nothing is due (or `seconds` pass); the round totals."""
    totals = run(
        workspace.engine,
        workspace.project,
        [target],
        stop=threading.Event(),
        until_idle=True,
        idle_wait=0.05,
        deadline=utcnow() + timedelta(seconds=seconds),
    )
    return vars(totals[target])
