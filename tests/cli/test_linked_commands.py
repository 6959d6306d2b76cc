"""`accord load --linked`, `accord linked show/orphans/summary` and the orphans in
`accord status`, end to end on a real SQLite store in the project folder."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import run
from tests.factories import erp_order_row, erp_row, write_csv


def _run(*args: str | Path, code: int = 0) -> str:
    return run(*args, code=code, env={"COLUMNS": "200"})  # wide tables: a row on a line


def test_orders_load_attach_and_orphans_are_explained(
    demo_project_dir: Path, tmp_path: Path
) -> None:
    root = demo_project_dir
    assert "3 linked-record mappings" in _run("validate", root)
    erp = write_csv(tmp_path / "erp.csv", [erp_row()], delimiter=";")
    _run("load", root, "--system", "erp", erp)
    _run("resolve", root)
    orders = write_csv(
        tmp_path / "orders.csv",
        [
            erp_order_row("A1", "0000000001", ERDAT="01.03.2024"),
            erp_order_row("A2", "0000000001", ERDAT="01.04.2024", NETWR="10"),
            erp_order_row("A3", "0000000404"),  # no such customer
            erp_order_row("A4", "0000000001", ERDAT="someday"),
        ],
        delimiter=";",
    )
    loaded = _run("load", root, "-s", "erp", "--linked", "order", orders)
    assert "orders.csv" in loaded and "some records were quarantined" in loaded

    shown = _run("linked", "show", root, "C0000001")
    assert "2 order" in shown and "erp:A2" in shown and "10 EUR" in shown
    assert shown.index("erp:A2") < shown.index("erp:A1")  # newest first
    as_json = json.loads(_run("linked", "show", root, "C0000001", "--json", "--limit", "1"))
    assert (as_json["total"], as_json["kinds"]) == (2, {"order": 2})
    assert [i["source_id"] for i in as_json["items"]] == ["A2"]
    assert "no customer 'C0000404'" in _run("linked", "show", root, "C0000404", code=1)

    orphans = _run("linked", "orphans", root)
    assert "erp:A3" in orphans and "no_customer_record" in orphans
    found = json.loads(_run("linked", "orphans", root, "--system", "erp", "--json"))
    assert [(i["source_id"], i["reason"]) for i in found["items"]] == [("A3", "no_customer_record")]
    assert "no system named 'sap'" in _run("linked", "orphans", root, "-s", "sap", code=1)
    summary = json.loads(_run("linked", "summary", root, "--json"))
    assert summary == [
        {"system": "erp", "kind": "order", "records": 3, "attached": 2, "orphans": 1}
    ]
    status = json.loads(_run("status", root, "--json"))
    assert {s["system"]: s["orphans"] for s in status["in"]}["erp"] == 1

    unknown = _run("load", root, "-s", "erp", "--linked", "invoice", orders, code=1)
    assert "no mapping for linked records of kind 'invoice'" in unknown
    assert "its linked-record kinds: order" in unknown
