"""Linked records end to end on both stores: the demo's three kinds loaded, re-loads
that write nothing, bad rows in quarantine (and replayed by their own mapping), records
that follow their customer through a split and a merge, and orphans, with reasons,
that attach once their customer record arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from accord.config.loader import LinkedMapping, Project
from accord.errors import InputRejected, NotAllowed, NotFound
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role, cli_actor
from accord.intake import quarantine
from accord.intake.load import LoadReport, load_file
from accord.intake.loads import withdraw
from accord.linked import service
from accord.linked.intake import load_linked_file
from accord.runtime.health import health_report
from accord.settings import Settings
from accord.steward import service as steward
from accord.store.engine import writing
from accord.store.tables import linked_record
from accord.workspace import Workspace
from tests.factories import (
    CRM_CONTRACTS_MAPPING,
    anna_chain_and_bob,
    billing_row,
    contract_row,
    crm_row,
    erp_order_row,
    erp_row,
    invoice_row,
    ticket_row,
    write_csv,
    write_jsonl,
)
from tests.plans import query_plans

ADMIN = cli_actor()
STEWARD = Actor("user", "stewie", Role.STEWARD)
VIEWER = Actor("user", "vera", Role.VIEWER)
C1, C3, C4 = ("crm", "C1"), ("crm", "C3"), ("crm", "C4")


@pytest.fixture
def contracts(workspace: Workspace) -> Workspace:
    """The demo project with a CRM contracts mapping, and Anna (C1-C3, one customer) and
    Bob (C4) from the CRM loaded and resolved."""
    (workspace.root / "mappings" / "crm_contracts.yaml").write_text(CRM_CONTRACTS_MAPPING)
    fresh = Workspace(workspace.root, workspace.engine, Settings())
    path = write_csv(workspace.root / "crm.csv", anna_chain_and_bob())
    load_file(fresh.engine, fresh.project, "crm", path, actor="test")
    assert _resolve(fresh) == {C1: "C0000001", ("crm", "C2"): "C0000001", C3: "C0000001"} | {
        C4: "C0000002"
    }
    return fresh


def _resolve(workspace: Workspace) -> dict[tuple[str, str], str]:
    return resolve(workspace.engine, workspace.project, actor="test").assignment


def _load(
    workspace: Workspace, system: str, kind: str, path: Path, project: Project | None = None
) -> LoadReport:
    project = project or workspace.project
    mapping: LinkedMapping = project.linked_mapping(system, kind)
    return load_linked_file(workspace.engine, project, mapping, path, actor="test")


def _ids(found: dict[str, Any]) -> list[str]:
    return [i["source_id"] for i in found["page"].items]


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(linked_record).order_by(linked_record.c.id)).all()
    return [dict(r._mapping) for r in rows]


def test_the_demo_kinds_load_with_their_formats(workspace: Workspace, tmp_path: Path) -> None:
    orders = write_csv(
        tmp_path / "erp_orders.csv",
        [erp_order_row("0000000001", "0010000001"), erp_order_row("0000000002", "0010000001")],
        delimiter=";",
    )
    invoices = write_jsonl(
        tmp_path / "billing_invoices.jsonl.gz",
        [invoice_row("INV-1", "BA-1"), invoice_row("INV-2", "BA-1", amount="-0.00")],
        gzipped=True,
    )
    tickets = write_csv(tmp_path / "service_tickets.csv", [ticket_row("T1", "10000000001")])

    reports = [
        _load(workspace, "erp", "order", orders),
        _load(workspace, "billing", "invoice", invoices),
        _load(workspace, "service", "ticket", tickets),
    ]

    assert [(r.read, r.new, r.quarantined) for r in reports] == [(2, 2, 0), (2, 2, 0), (1, 1, 0)]
    rows = {(r["system"], r["source_id"]): r for r in _rows(workspace.engine)}
    order = rows[("erp", "0000000001")]
    assert (order["kind"], order["customer_system"], order["customer_source_id"]) == (
        "order",
        "erp",
        "0010000001",
    )
    assert order["occurred_at"].isoformat() == "2013-10-04T00:00:00+00:00"  # 04.10.2013
    assert (order["amount"], order["currency"]) == ("1234.50", "EUR")
    assert order["payload"] == erp_order_row("0000000001", "0010000001")
    assert rows[("billing", "INV-2")]["amount"] == "0.00"  # -0.00 is 0.00
    assert rows[("billing", "INV-1")]["status"] == "paid"
    ticket = rows[("service", "T1")]
    assert (ticket["title"], ticket["status"]) == ("Login does not work", "open")
    assert ticket["payload"]["priority"] == "high"  # kept, though no field reads it


def test_loading_again_writes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    rows = [erp_order_row(f"{n:010d}", "0010000001") for n in range(150)]  # COPY on PostgreSQL
    orders = write_csv(tmp_path / "erp_orders.csv", rows, delimiter=";")
    _load(workspace, "erp", "order", orders)
    before = _rows(workspace.engine)

    again = _load(workspace, "erp", "order", orders)

    assert (again.read, again.new, again.changed, again.unchanged) == (150, 0, 0, 150)
    assert _rows(workspace.engine) == before  # not even updated_at moved

    rows[3]["NETWR"] = "99.00"
    changed = _load(workspace, "erp", "order", write_csv(orders, rows, delimiter=";"))
    assert (changed.new, changed.changed, changed.unchanged) == (0, 1, 149)
    after = {r["source_id"]: r for r in _rows(workspace.engine)}
    assert len(after) == 150  # replaced, not added
    assert after["0000000003"]["amount"] == "99.00"
    assert after["0000000003"]["first_seen_at"] == before[3]["first_seen_at"]


def test_a_new_mapping_version_maps_unchanged_records_again(
    workspace: Workspace, tmp_path: Path
) -> None:
    orders = write_csv(tmp_path / "o.csv", [erp_order_row("1", "K1", WAERK="eur")], delimiter=";")
    _load(workspace, "erp", "order", orders)
    path = workspace.root / "mappings" / "erp_orders.yaml"
    path.write_text(path.read_text().replace("  currency: WAERK\n", ""))
    fresh = Workspace(workspace.root, workspace.engine, Settings())

    report = _load(fresh, "erp", "order", orders)

    assert (report.new, report.changed, report.remapped, report.unchanged) == (0, 0, 1, 0)
    [row] = _rows(workspace.engine)
    assert row["currency"] is None
    assert row["mapping_version"] == fresh.project.linked["erp_orders"].version


def test_bad_rows_go_to_quarantine_with_reasons_and_replay_by_their_mapping(
    workspace: Workspace, tmp_path: Path
) -> None:
    rows = [
        erp_order_row("1", "K1"),
        erp_order_row("2", "", ERDAT="31.02.2013", NETWR="1.234,50", WAERK="EURO"),
        erp_order_row("", "K1"),
        erp_order_row("1", "K1", NETWR="5.00"),  # the id again, other content
        erp_order_row("3", "K1", NETWR="1e5"),
    ]
    report = _load(workspace, "erp", "order", write_csv(tmp_path / "o.csv", rows, delimiter=";"))

    assert (report.read, report.new, report.quarantined) == (5, 1, 4)
    assert report.quarantine_reasons == {
        "customer.missing": 1,
        "date.invalid": 1,
        "amount.invalid": 2,
        "currency.invalid": 1,
        "source_id.missing": 1,
        "source_id.repeated": 1,
    }
    with workspace.engine.connect() as conn:
        page = quarantine.entries(conn, ADMIN, system="erp")
    by_location = {e["location"]: e for e in page.items}
    second = by_location["o.csv line 3"]
    assert {(r["code"], r.get("field")) for r in second["reasons"]} == {
        ("customer.missing", "customer"),
        ("date.invalid", "occurred_at"),
        ("amount.invalid", "amount"),
        ("currency.invalid", "currency"),
    }
    assert "no thousands separators" in next(
        r["message"] for r in second["reasons"] if r["code"] == "amount.invalid"
    )

    # corrected, the amount replays through the orders mapping, not the ERP customers'
    entry = by_location["o.csv line 6"]["id"]
    quarantine.correct(
        workspace.engine, workspace.project, entry, actor=ADMIN, changes={"NETWR": "100000"}
    )
    [replayed] = quarantine.replay(workspace.engine, workspace.project, actor=ADMIN, ids=[entry])
    assert (replayed.system, replayed.kind, replayed.replayed) == ("erp", "order", 1)
    stored = {r["source_id"]: r["amount"] for r in _rows(workspace.engine)}
    assert stored == {"1": "1234.50", "3": "100000"}
    # everything open replays by its load's mapping; those still wrong stay open, and the
    # repeated id, on its own now, is stored as the record's newer content (as customers')
    reports = quarantine.replay(workspace.engine, workspace.project, actor=ADMIN)
    assert [(r.kind, r.entries, r.replayed, r.still_failing) for r in reports] == [
        ("order", 3, 1, 2)
    ]
    assert {r["source_id"]: r["amount"] for r in _rows(workspace.engine)}["1"] == "5.00"


def test_a_load_of_linked_records_is_not_withdrawn(workspace: Workspace, tmp_path: Path) -> None:
    wrong = write_csv(tmp_path / "o.csv", [erp_order_row("1", "K")])  # comma, not ";"
    with pytest.raises(InputRejected, match="looks ','-delimited"):
        _load(workspace, "erp", "order", wrong)
    assert _rows(workspace.engine) == []
    path = write_csv(tmp_path / "o.csv", [erp_order_row("1", "K")], delimiter=";")
    report = _load(workspace, "erp", "order", path)
    with pytest.raises(InputRejected, match="keep no versions"):
        withdraw(workspace.engine, report.load_id, actor=ADMIN)


def test_records_follow_their_customer_through_a_split_and_a_merge(
    contracts: Workspace,
) -> None:
    ws = contracts
    path = write_csv(
        ws.root / "contracts.csv",
        [
            contract_row("K1", "C1", Signed="2024-01-01"),
            contract_row("K3", "C3", Signed="2024-03-01"),
            contract_row("K4", "C4", Signed="2024-04-01"),
            contract_row("K0", "C2", Signed=""),  # no time: listed last
        ],
    )
    _load(ws, "crm", "contract", path)
    with ws.engine.connect() as conn:
        anna = service.of_customer(conn, VIEWER, "C0000001")
    assert _ids(anna) == ["K3", "K1", "K0"]  # newest first, members' records together
    assert anna["kinds"] == {"contract": 3}

    with writing(ws.engine) as conn:
        steward.split(conn, STEWARD, "C0000001", [C3], note="another Anna")
    assert _resolve(ws)[C3] == "C0000003"
    with ws.engine.connect() as conn:
        assert _ids(service.of_customer(conn, VIEWER, "C0000001")) == ["K1", "K0"]
        assert _ids(service.of_customer(conn, VIEWER, "C0000003")) == ["K3"]

    with writing(ws.engine) as conn:
        steward.decide_pair(conn, STEWARD, C3, C4, decision="same")
    assignment = _resolve(ws)
    merged = assignment[C4]
    assert assignment[C3] == merged
    gone = ({"C0000002", "C0000003"} - {merged}).pop()
    with ws.engine.connect() as conn:
        survivor = service.of_customer(conn, VIEWER, merged, limit=1)
        old = service.of_customer(conn, VIEWER, gone)
    assert (_ids(survivor), survivor["page"].total) == (["K4"], 2)  # a page of one
    assert (old["status"], old["merged_into"], old["page"].total) == ("merged", merged, 0)


def test_a_customer_s_summary_counts_sums_and_shows_the_newest(contracts: Workspace) -> None:
    ws = contracts
    rows = [
        contract_row("K1", "C1", Signed="2024-01-01", Value="500.10"),
        contract_row("K2", "C2", Signed="2024-02-01", Value="0.20"),
        contract_row("K3", "C3", Signed="2024-03-01", Value="7", Currency="USD"),
        contract_row("K4", "C4", Signed="2024-04-01"),  # Bob's: not Anna's
    ]
    _load(ws, "crm", "contract", write_csv(ws.root / "contracts.csv", rows))
    with ws.engine.connect() as conn:
        [contracts_] = service.summary_of_customer(conn, VIEWER, "C0000001", recent=2)
        with pytest.raises(NotFound):
            service.summary_of_customer(conn, VIEWER, "C0000404", recent=2)
    assert (contracts_["kind"], contracts_["count"]) == ("contract", 3)
    assert contracts_["totals"] == {"EUR": "500.30", "USD": "7"}  # exact, per currency
    assert [r["source_id"] for r in contracts_["recent"]] == ["K3", "K2"]


def test_orphans_are_listed_with_reasons_and_attach_when_the_customer_arrives(
    contracts: Workspace,
) -> None:
    ws = contracts
    # C8 is quarantined (a person without a name); C9 never came
    bad = write_csv(ws.root / "bad.csv", [crm_row("C8", FirstName="", LastName="")])
    load_file(ws.engine, ws.project, "crm", bad, actor="test")
    rows = [contract_row("K1", "C1"), contract_row("K8", "C8"), contract_row("K9", "C9")]
    _load(ws, "crm", "contract", write_csv(ws.root / "contracts.csv", rows))

    def orphans(actor: Actor = ADMIN, **kwargs: Any) -> dict[str, str]:
        with ws.engine.connect() as conn:
            page = service.orphans(conn, actor, **kwargs)
        return {i["source_id"]: i["reason"] for i in page.items}

    assert orphans() == {"K8": "customer_quarantined", "K9": "no_customer_record"}
    assert orphans(system="erp") == {}
    assert orphans(kind="order") == {}
    report = health_report(ws.engine, ws.project, actor=ADMIN)
    assert {h.system: h.orphans for h in report.intake}["crm"] == 2

    good = write_csv(ws.root / "good.csv", [crm_row("C9", FirstName="Zoe", Email="z@q.org")])
    load_file(ws.engine, ws.project, "crm", good, actor="test")
    assert orphans()["K9"] == "unresolved"  # stored, not matched yet
    zoe = _resolve(ws)[("crm", "C9")]
    assert orphans() == {"K8": "customer_quarantined"}
    with ws.engine.connect() as conn:
        assert _ids(service.of_customer(conn, VIEWER, zoe)) == ["K9"]
        assert service.summary(conn, ADMIN) == [
            {"system": "crm", "kind": "contract", "records": 3, "attached": 2, "orphans": 1}
        ]


def test_reading_needs_the_right_permission(contracts: Workspace) -> None:
    monitor = Actor("monitor", "prometheus", Role.MONITOR)
    with contracts.engine.connect() as conn:
        with pytest.raises(NotAllowed, match="customers:read"):
            service.of_customer(conn, monitor, "C0000001")
        with pytest.raises(NotAllowed, match="records:read"):
            service.orphans(conn, VIEWER)
        with pytest.raises(NotFound, match="no customer 'C0000404'"):
            service.of_customer(conn, VIEWER, "C0000404")
        # a system's key sees its own orphans only
        with pytest.raises(NotFound):
            service.orphans(conn, Actor("system", "erp", Role.SYSTEM), system="crm")


def test_reads_search_by_index(contracts: Workspace, tmp_path: Path) -> None:
    """A customer's records are found from its crosswalk rows, and an orphan's reason
    from its customer's key, never by scanning (SQLite's plans; PostgreSQL's were checked
    by hand at 200,000 orders, docs/linked-records.md)."""
    if contracts.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans")
    rows = [contract_row(f"K{n}", f"C{n % 7}") for n in range(50)]
    _load(contracts, "crm", "contract", write_csv(tmp_path / "c.csv", rows))

    def reads(conn: Any) -> None:
        service.of_customer(conn, VIEWER, "C0000001", kind="contract")
        service.orphans(conn, ADMIN, system="crm")

    plans = query_plans(contracts.engine, reads)
    assert not [p for p in plans if p.startswith("SCAN crosswalk")], plans
    assert any("ix_linked_record_customer_system_customer_source_id_system" in p for p in plans)
    assert any("ix_quarantine_system_source_id" in p for p in plans)
    assert any(p.startswith("SEARCH crosswalk USING INDEX ix_crosswalk_golden_id") for p in plans)
    with contracts.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(linked_record)).scalar_one()
    assert count == 50


def test_billing_invoices_of_an_account_loaded_with_the_customers(
    workspace: Workspace, tmp_path: Path
) -> None:
    """The demo's systems together: an ERP customer's orders and a billing account's
    invoices end up with the one golden customer they both belong to."""
    erp = write_csv(tmp_path / "erp.csv", [erp_row()], delimiter=";")
    billing = write_jsonl(
        tmp_path / "b.jsonl",
        [billing_row("BA-1", first_name="Hans", last_name="Müller", email="h@m.de")],
    )
    load_file(workspace.engine, workspace.project, "erp", erp, actor="test")
    load_file(workspace.engine, workspace.project, "billing", billing, actor="test")
    orders = write_csv(tmp_path / "o.csv", [erp_order_row("1", "0000000001")], delimiter=";")
    _load(workspace, "erp", "order", orders)
    _load(
        workspace,
        "billing",
        "invoice",
        write_jsonl(tmp_path / "i.jsonl", [invoice_row("I", "BA-1")]),
    )
    assignment = _resolve(workspace)
    with workspace.engine.connect() as conn:
        found = {
            key: service.of_customer(conn, VIEWER, assignment[key])["kinds"]
            for key in (("erp", "0000000001"), ("billing", "BA-1"))
        }
    if assignment[("erp", "0000000001")] == assignment[("billing", "BA-1")]:
        assert list(found.values()) == [{"invoice": 1, "order": 1}] * 2
    else:
        assert list(found.values()) == [{"order": 1}, {"invoice": 1}]
