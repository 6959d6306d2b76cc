"""Linked-record mappings (mappings/erp_orders.yaml): read beside the customer mappings,
every problem reported at once with file, line and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.config import load_project
from accord.errors import NotFound, ProjectInvalid


def _problems(root: Path) -> list[str]:
    with pytest.raises(ProjectInvalid) as caught:
        load_project(root)
    return [str(p) for p in caught.value.problems]


def test_the_demo_declares_orders_invoices_and_tickets(demo_project_dir: Path) -> None:
    project = load_project(demo_project_dir)
    assert {n: (m.config.system, m.config.kind) for n, m in project.linked.items()} == {
        "erp_orders": ("erp", "order"),
        "billing_invoices": ("billing", "invoice"),
        "service_tickets": ("service", "ticket"),
    }
    orders = project.linked_mapping("erp", "order")
    assert orders.version.startswith("erp_orders@")
    assert orders.config.customers_in == "erp"
    assert orders.config.fields.occurred_at is not None
    assert orders.config.fields.occurred_at.formats == ["%d.%m.%Y"]
    assert set(project.mappings) == {"crm", "erp", "billing", "service"}  # customers' only
    assert "linked" in project.as_document()
    with pytest.raises(NotFound, match="no mapping for linked records of kind 'invoice'"):
        project.linked_mapping("erp", "invoice")
    with pytest.raises(NotFound, match="no system named 'sap'"):
        project.linked_mapping("sap", "order")


def test_every_problem_of_a_linked_mapping_is_reported(demo_project_dir: Path) -> None:
    (demo_project_dir / "mappings" / "erp_contracts.yaml").write_text(
        "system: sap\n"
        "kind: contrakt\n"
        "source_id: ID\n"
        "customer: KUNNR\n"
        "customer_system: crmx\n"
        "fields:\n"
        "  amout: NETWR\n"
        "  title: {compute: \"'x'\"}\n"
        "  status: {from: S, formats: ['%Y']}\n"
    )
    problems = _problems(demo_project_dir)
    text = "\n".join(problems)
    assert "erp_contracts.yaml:2: kind: Input should be 'order', 'invoice'" in text
    assert "erp_contracts.yaml:7: unknown key 'fields.amout'" in text
    assert "did you mean 'amount'?" in text
    assert "erp_contracts.yaml:1: system 'sap' is not declared in accord.yaml" in text
    assert "erp_contracts.yaml:5: customer_system 'crmx' is not declared" in text
    assert "erp_contracts.yaml:8: `compute` is for customer mappings" in text
    assert "`formats` only applies to occurred_at; status is not a date" in text


def test_a_linked_mapping_named_like_a_system_or_twice_for_a_kind(
    demo_project_dir: Path,
) -> None:
    mappings = demo_project_dir / "mappings"
    (mappings / "erp_orders_2024.yaml").write_text(
        (mappings / "erp_orders.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (mappings / "crm.yaml").write_text(
        "system: crm\nkind: contract\nsource_id: Id\ncustomer: AccountId\n"
    )
    text = "\n".join(_problems(demo_project_dir))
    assert "maps erp's order records already" in text
    assert "crm.yaml is named like system 'crm'" in text
    assert "rename it crm_contracts.yaml" in text
