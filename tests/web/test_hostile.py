"""The OWASP basics through the HTTP layer: forged forms, injection in search, reaching
across systems, characters no store keeps, and the headers every answer carries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row, write_csv
from tests.web.test_access import PATH_VALUES, _api_routes

PASSWORD = "a long enough password"
INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE golden_record; --",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "*",
    'NEAR("a" "b")',
    "a AND b OR -c",
    "(((",
    "$$",
    "<script>alert(1)</script>",
    "{{7*7}}",
]


@pytest.fixture
def client(workspace: Workspace, tmp_path: Path) -> Iterator[TestClient]:
    rows = [crm_row("C1"), crm_row("C2", FirstName="Zoë", LastName="O'Brien", Email="z@x.org")]
    path = write_csv(tmp_path / "crm.csv", rows)
    load_file(workspace.engine, workspace.project, "crm", path, actor="test")
    resolve(workspace.engine, workspace.project, actor="test")
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "admin", PASSWORD, Role.ADMIN, created_by="test")
    _, session = identity.sign_in(workspace.engine, "admin", PASSWORD)
    with TestClient(create_app(workspace)) as test_client:
        test_client.cookies.set("accord_session", session.token)
        yield test_client


def _page_forms(workspace: Workspace) -> list[str]:
    """Every page route that takes a POST (the forms), with its path filled in."""
    return sorted(
        re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), route.path)
        for route in _api_routes(create_app(workspace).routes)
        if "POST" in route.methods and not route.include_in_schema
    )


def test_no_form_is_acted_on_without_its_csrf_token(
    client: TestClient, workspace: Workspace
) -> None:
    forms = _page_forms(workspace)
    assert "/logout" in forms
    assert "/login" in forms
    client.get("/customers")  # the page sets this browser's CSRF cookie
    assert client.cookies.get("accord_csrf")
    for path in forms:
        for token in (None, "forged", ""):
            data = {"csrf_token": token} if token is not None else {}
            response = client.post(path, data=data, follow_redirects=False)
            assert response.status_code == 403, (path, token, response.status_code)
            assert "did not come from this site" in response.text, path
    # the session survived every forged sign-out
    assert client.get("/api/v1/session").status_code == 200


def test_search_treats_injection_as_plain_text(client: TestClient) -> None:
    for text in INJECTIONS:
        api = client.get("/api/v1/customers", params={"q": text})
        assert api.status_code == 200, (text, api.text)
        assert api.json()["total"] == 0, text
        page = client.get("/customers", params={"q": text})
        assert page.status_code == 200, text
        assert "<script>alert(1)" not in page.text
    assert client.get("/api/v1/customers", params={"q": "o'brien"}).json()["total"] == 1


def test_nul_is_refused_saying_where(client: TestClient) -> None:
    api = client.get("/api/v1/customers", params={"q": "a\x00b"})
    assert api.status_code == 422
    assert "NUL" in api.json()["message"]
    page = client.get("/customers?q=a%00b")
    assert page.status_code == 422
    assert "NUL" in page.text
    body = client.post("/api/v1/reviews/1/decision", json={"decision": "same", "note": "x\x00"})
    assert body.status_code == 422
    assert body.json()["problems"][0]["message"].startswith("Value error, body.note")


def test_a_system_key_cannot_reach_another_system(client: TestClient, workspace: Workspace) -> None:
    with writing(workspace.engine) as conn:
        key = identity.create_api_key(conn, "erp", created_by="test")
    client.cookies.clear()
    headers = {"x-api-key": key}
    assert client.get("/api/v1/systems/crm/records/C1", headers=headers).status_code == 404
    pushed = client.post(
        "/api/v1/systems/crm/records", json={"records": [{"id": "x"}]}, headers=headers
    )
    assert pushed.status_code == 403
    # nor any person's page
    assert client.get("/customers", headers=headers, follow_redirects=False).status_code == 403


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    for path in ["/customers", "/login", "/api/v1/customers", "/health", "/nowhere"]:
        headers = client.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"


def test_session_cookies_are_httponly_and_strict(workspace: Workspace) -> None:
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "someone", PASSWORD, Role.VIEWER, created_by="test")
    with TestClient(create_app(workspace)) as fresh:
        answer = fresh.post("/api/v1/session", json={"username": "someone", "password": PASSWORD})
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie or "samesite=lax" in cookie


def test_api_routes_are_all_described(workspace: Workspace) -> None:
    """Every API route is in /openapi.json, so schemathesis reaches it."""
    hidden = [
        route.path
        for route in _api_routes(create_app(workspace).routes)
        if route.path.startswith("/api/") and not route.include_in_schema
    ]
    assert not hidden
    assert all(isinstance(r, APIRoute) for r in _api_routes(create_app(workspace).routes))


def test_ids_past_the_store_are_refused_not_looked_up(client: TestClient) -> None:
    huge = str(2**70)
    for path in [f"/quarantine/{huge}", f"/audit?before={huge}", f"/api/v1/reviews/{huge}"]:
        response = client.get(path)
        assert response.status_code == 422, (path, response.status_code)
