"""`/api/v1/quarantine` and `/api/v1/loads` over HTTP on both stores: signed in with the
right role, an entry is listed, corrected, replayed; a load withdrawn once; without
credentials or the permission, nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row, write_csv

PASSWORD = "a long enough password"


@pytest.fixture
def client(workspace: Workspace) -> Iterator[TestClient]:
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "op", PASSWORD, Role.OPERATOR, created_by="test")
        identity.create_user(conn, "viewer", PASSWORD, Role.VIEWER, created_by="test")
    with TestClient(create_app(workspace)) as test_client:
        yield test_client


def _sign_in(client: TestClient, username: str) -> None:
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200


def test_correct_replay_and_withdraw_over_http(
    client: TestClient, workspace: Workspace, tmp_path: Path
) -> None:
    rows = [crm_row("C1"), crm_row("C2", FirstName="", LastName="")]
    report = load_file(
        workspace.engine, workspace.project, "crm", write_csv(tmp_path / "c.csv", rows), actor="t"
    )
    assert client.get("/api/v1/quarantine").status_code == 401
    assert client.post(f"/api/v1/loads/{report.load_id}/withdraw").status_code == 401
    _sign_in(client, "viewer")
    assert client.get("/api/v1/quarantine").status_code == 403
    assert client.post(f"/api/v1/loads/{report.load_id}/withdraw").status_code == 403

    _sign_in(client, "op")
    page = client.get("/api/v1/quarantine", params={"reason": "name.missing"}).json()
    assert page["total"] == 1
    entry_id = page["items"][0]["id"]
    assert client.get(f"/api/v1/quarantine/{entry_id}").json()["location"] == "c.csv line 3"
    assert client.get("/api/v1/quarantine/999").status_code == 404

    bad = client.post(
        f"/api/v1/quarantine/{entry_id}/correct", json={"set": {"LastName": "a\u0000"}}
    )
    assert bad.status_code == 422 and "NUL" in bad.text
    assert client.post(f"/api/v1/quarantine/{entry_id}/correct", json={}).status_code == 422
    broken = client.post(
        f"/api/v1/quarantine/{entry_id}/correct",
        content=b'{"set": {"LastName": "\xff"}}',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code in (400, 422)
    fixed = client.post(
        f"/api/v1/quarantine/{entry_id}/correct", json={"set": {"LastName": "Schmidt"}}
    )
    assert fixed.status_code == 200 and fixed.json()["correction"]["LastName"] == "Schmidt"

    assert client.post("/api/v1/quarantine/replay", json={}).status_code == 422
    replayed = client.post("/api/v1/quarantine/replay", json={"ids": [entry_id]}).json()
    assert [(r["replayed"], r["still_failing"]) for r in replayed] == [(1, 0)]
    again = client.post("/api/v1/quarantine/replay", json={"ids": [entry_id]})
    assert again.status_code == 409

    loads = client.get("/api/v1/loads").json()
    assert [item["channel"] for item in loads["items"]] == ["replay", "file"]
    withdrawn = client.post(f"/api/v1/loads/{report.load_id}/withdraw").json()
    assert withdrawn["removed"] == 1
    assert client.post(f"/api/v1/loads/{report.load_id}/withdraw").status_code == 409
    assert client.get(f"/api/v1/loads/{report.load_id}").json()["status"] == "withdrawn"
