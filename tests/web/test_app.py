"""The HTTP layer: what is open, what needs whom, and what comes back."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row, write_csv

PASSWORD = "a long enough password"


@pytest.fixture
def client(workspace: Workspace, tmp_path: Path) -> Iterator[TestClient]:
    path = write_csv(
        tmp_path / "crm.csv",
        [
            crm_row("C1"),
            crm_row(
                "C2",
                FirstName="<script>Alert(1)</script>",
                LastName="Evil",
                Email="e@x.org",
                Phone="",
                BirthDate="1990-01-01",
            ),
        ],
    )
    load_file(workspace.engine, workspace.project, "crm", path, actor="test")
    resolve(workspace.engine, workspace.project, actor="test")
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "viewer", PASSWORD, Role.VIEWER, created_by="test")
    with TestClient(create_app(workspace)) as test_client:
        yield test_client


def _sign_in(client: TestClient, username: str = "viewer") -> None:
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text


def test_only_health_and_sign_in_are_open(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}
    for path in [
        "/api/v1/customers",
        "/api/v1/customers/C0000001",
        "/openapi.json",
        "/api/v1/systems/crm/records/C1",
        "/api/v1/session",
    ]:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"] == "NotAuthenticated"
    page = client.get("/customers", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/customers"
    assert client.get("/login").status_code == 200


def test_sign_in_search_and_read_a_customer(client: TestClient) -> None:
    assert (
        client.post(
            "/api/v1/session", json={"username": "viewer", "password": "wrong password!"}
        ).status_code
        == 401
    )
    _sign_in(client)
    page = client.get("/api/v1/customers", params={"q": "schmidt"}).json()
    assert page["total"] == 1
    golden_id = page["items"][0]["golden_id"]
    customer = client.get(f"/api/v1/customers/{golden_id}").json()
    assert customer["data"]["family_name"] == "Schmidt"
    assert customer["lineage"]["email"]["system"] == "crm"
    assert customer["members"][0]["source_id"] == "C1"
    assert client.get("/api/v1/customers/C9999999").status_code == 404
    assert "/api/v1/customers" in client.get("/openapi.json").json()["paths"]


def test_a_viewer_may_not_read_source_records(client: TestClient) -> None:
    _sign_in(client)
    response = client.get("/api/v1/systems/crm/records/C1")
    assert response.status_code == 403
    assert "records:read" in response.json()["message"]


def test_a_system_key_reads_its_own_records_only(client: TestClient, workspace: Workspace) -> None:
    with writing(workspace.engine) as conn:
        key = identity.create_api_key(conn, "crm", created_by="test")
        other = identity.create_api_key(conn, "erp", created_by="test")
    own = client.get("/api/v1/systems/crm/records/C1", headers={"X-API-Key": key})
    assert own.status_code == 200
    assert own.json()["versions"][0]["payload"]["Id"] == "C1"
    assert (
        client.get(
            "/api/v1/systems/crm/records/C1", headers={"Authorization": f"Bearer {other}"}
        ).status_code
        == 404
    )
    assert client.get("/api/v1/customers", headers={"X-API-Key": key}).status_code == 403
    assert client.get("/api/v1/customers", headers={"X-API-Key": key + "x"}).status_code == 401


def test_pages_escape_what_users_typed_and_send_security_headers(client: TestClient) -> None:
    _sign_in(client)
    page = client.get("/customers", params={"q": "evil"})
    assert page.status_code == 200
    assert "<script>Alert(1)</script>" not in page.text
    assert "&lt;script&gt;Alert(1)&lt;/script&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    partial = client.get("/customers", params={"q": "evil"}, headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "Evil" in partial.text


def test_login_form_needs_its_csrf_token(client: TestClient) -> None:
    form = {"username": "viewer", "password": PASSWORD, "next": "/customers"}
    refused = client.post("/login", data=form, follow_redirects=False)
    assert refused.status_code == 403
    client.get("/login")
    token = client.cookies.get("accord_csrf")
    signed_in = client.post("/login", data=form | {"csrf_token": token}, follow_redirects=False)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/customers"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_sign_in_never_redirects_off_site(client: TestClient) -> None:
    client.get("/login")
    token = client.cookies.get("accord_csrf")
    form = {
        "username": "viewer",
        "password": PASSWORD,
        "csrf_token": token,
        "next": "//evil.example/steal",
    }
    response = client.post("/login", data=form, follow_redirects=False)
    assert response.headers["location"] == "/customers"


def test_customer_page_shows_lineage(client: TestClient) -> None:
    _sign_in(client)
    golden_id = client.get("/api/v1/customers", params={"q": "schmidt"}).json()["items"][0][
        "golden_id"
    ]
    page = client.get(f"/customers/{golden_id}")
    assert page.status_code == 200
    assert "crm:C1" in page.text and "Anna" in page.text
    assert client.get("/customers/nope").status_code == 404


def test_sign_out_ends_the_session(client: TestClient) -> None:
    _sign_in(client)
    assert client.delete("/api/v1/session").status_code == 204
    assert client.get("/api/v1/customers").status_code == 401


def test_bad_query_parameters_get_422(client: TestClient) -> None:
    _sign_in(client)
    assert client.get("/api/v1/customers", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/customers", params={"limit": 10_000}).status_code == 422
    assert client.get("/api/v1/customers", params={"q": "x" * 500}).status_code == 422


def test_a_started_app_keeps_what_it_holds_out_of_full_collections(
    demo_project_dir: Path,
) -> None:
    """The app's start (its lifespan) freezes what the process holds (runtime/heap.py),
    seen in a process of its own: in this one any earlier test may have frozen it."""
    script = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "from fastapi.testclient import TestClient\n"
        "from accord.web.app import create_app\n"
        "from accord.workspace import open_workspace\n"
        "app = create_app(open_workspace(Path(sys.argv[1])))\n"
        "before = gc.get_freeze_count()\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/health').status_code == 200\n"
        "    print(before, gc.get_freeze_count())\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "ACCORD_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(demo_project_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=environ,
    )
    before, after = map(int, done.stdout.split())
    assert before == 0
    assert after > 10_000
