"""`GET /api/v1/customers/{id}/linked` and `GET /api/v1/linked/orphans`: nothing without
credentials, the right permission for each, and what comes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.linked.intake import load_linked_file
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import erp_order_row, erp_row, write_csv

PASSWORD = "a long enough password"
LINKED = "/api/v1/customers/C0000001/linked"
ORPHANS = "/api/v1/linked/orphans"


@pytest.fixture
def keys(workspace: Workspace, tmp_path: Path) -> dict[str, str]:
    """An ERP customer with two orders, an order of a customer that never came, people
    of each role and a key each for the ERP, the CRM and monitoring."""
    erp = write_csv(tmp_path / "erp.csv", [erp_row()], delimiter=";")
    load_file(workspace.engine, workspace.project, "erp", erp, actor="test")
    resolve(workspace.engine, workspace.project, actor="test")
    orders = [
        erp_order_row("A1", "0000000001", ERDAT="01.03.2024"),
        erp_order_row("A2", "0000000001", ERDAT="01.04.2024"),
        erp_order_row("A3", "0000000404"),
    ]
    path = write_csv(tmp_path / "orders.csv", orders, delimiter=";")
    mapping = workspace.project.linked_mapping("erp", "order")
    load_linked_file(workspace.engine, workspace.project, mapping, path, actor="test")
    with writing(workspace.engine) as conn:
        for role in (Role.VIEWER, Role.OPERATOR):
            identity.create_user(conn, str(role), PASSWORD, role, created_by="test")
        return {
            name: identity.create_api_key(conn, name, created_by="test", role=role)
            for name, role in (
                ("erp", Role.SYSTEM),
                ("crm", Role.SYSTEM),
                ("prometheus", Role.MONITOR),
            )
        }


@pytest.fixture
def client(workspace: Workspace, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(workspace)) as test_client:
        yield test_client


def _sign_in(client: TestClient, username: str) -> None:
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text


def test_nothing_without_credentials(client: TestClient) -> None:
    for path in (LINKED, ORPHANS):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"] == "NotAuthenticated"


def test_each_needs_its_permission(client: TestClient, keys: dict[str, str]) -> None:
    monitor = {"X-API-Key": keys["prometheus"]}
    assert client.get(LINKED, headers=monitor).status_code == 403
    assert client.get(ORPHANS, headers=monitor).status_code == 403
    assert client.get(LINKED, headers={"X-API-Key": keys["erp"]}).status_code == 403
    _sign_in(client, "viewer")  # customers, but not source records
    assert client.get(LINKED).status_code == 200
    assert client.get(ORPHANS).status_code == 403


def test_a_customers_linked_records_newest_first(client: TestClient) -> None:
    _sign_in(client, "viewer")
    body = client.get(LINKED, params={"limit": 1}).json()
    assert (body["status"], body["kinds"], body["total"]) == ("active", {"order": 2}, 2)
    [item] = body["items"]
    assert (item["source_id"], item["occurred_at"]) == ("A2", "2024-04-01T00:00:00+00:00")
    assert (item["amount"], item["currency"], item["payload"]["VBELN"]) == ("1234.50", "EUR", "A2")
    assert client.get(LINKED, params={"kind": "invoice"}).json()["total"] == 0
    missing = client.get("/api/v1/customers/C0000404/linked")
    assert missing.status_code == 404
    assert client.get(LINKED, params={"limit": 500}).status_code == 422


def test_orphans_with_reasons_a_system_sees_its_own(
    client: TestClient, keys: dict[str, str]
) -> None:
    _sign_in(client, "operator")
    body = client.get(ORPHANS).json()
    assert body["total"] == 1
    [orphan] = body["items"]
    assert (orphan["source_id"], orphan["reason"]) == ("A3", "no_customer_record")
    assert "load it, or fix the reference" in orphan["hint"]
    client.delete("/api/v1/session")
    erp, crm = {"X-API-Key": keys["erp"]}, {"X-API-Key": keys["crm"]}
    assert client.get(ORPHANS, headers=erp).json()["total"] == 1
    assert client.get(ORPHANS, headers=crm).json()["total"] == 0  # crm's own: none
    assert client.get(ORPHANS, headers=crm, params={"system": "erp"}).status_code == 404


def test_metrics_count_orphans_per_system(client: TestClient, keys: dict[str, str]) -> None:
    text = client.get("/metrics", headers={"X-API-Key": keys["prometheus"]}).text
    assert 'accord_linked_orphans{system="erp"} 1.0' in text
    assert 'accord_linked_orphans{system="crm"} 0.0' in text
