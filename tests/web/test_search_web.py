"""Customer search over HTTP: the JSON API's filters and the search page's, with bad
filters answered 422 and injection attempts searched as plain text."""

from __future__ import annotations

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
    rows = [
        crm_row("C1"),
        crm_row("C2", FirstName="Jean", LastName="Dupont", Email="jd@x.fr", Country="France"),
    ]
    load_file(
        workspace.engine, workspace.project, "crm", write_csv(tmp_path / "c.csv", rows), actor="t"
    )
    resolve(workspace.engine, workspace.project, actor="test")
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "viewer", PASSWORD, Role.VIEWER, created_by="test")
    with TestClient(create_app(workspace)) as test_client:
        response = test_client.post(
            "/api/v1/session", json={"username": "viewer", "password": PASSWORD}
        )
        assert response.status_code == 200
        yield test_client


def _names(client: TestClient, **params: str) -> list[str]:
    response = client.get("/api/v1/customers", params=params)
    assert response.status_code == 200, response.text
    return [item["display_name"] for item in response.json()["items"]]


def test_the_api_filters_by_system_country_and_status(client: TestClient) -> None:
    assert _names(client, q="dupont") == ["Jean Dupont"]
    assert _names(client, country="FR") == ["Jean Dupont"]
    assert _names(client, country="fr", q="dupont") == ["Jean Dupont"]
    assert _names(client, system="crm", q="dupont") == ["Jean Dupont"]
    assert _names(client, system="erp") == []
    assert _names(client, status="merged") == []
    page = client.get("/api/v1/customers", params={"q": "dupnot"}).json()
    assert [(i["display_name"], i["near"]) for i in page["items"]] == [("Jean Dupont", True)]
    assert (page["total"], page["more"]) == (1, False)
    assert client.get("/api/v1/customers", params={"status": "gone"}).status_code == 422
    assert client.get("/api/v1/customers", params={"country": "FRA"}).status_code == 422


@pytest.mark.parametrize(
    "query", ["' OR '1'='1", '"; DROP TABLE golden_record; --', "NEAR(a b)", "%_*", '(")']
)
def test_injection_in_search_is_plain_text(client: TestClient, query: str) -> None:
    assert client.get("/api/v1/customers", params={"q": query}).status_code == 200
    assert client.get("/customers", params={"q": query}).status_code == 200
    assert _names(client, q="dupont") == ["Jean Dupont"]


def test_the_page_offers_the_filters_and_applies_them(client: TestClient) -> None:
    page = client.get("/customers", params={"country": "FR"})
    assert page.status_code == 200
    assert '<option value="crm">crm</option>' in page.text  # the project's systems
    assert '<option value="FR" selected>France</option>' in page.text
    assert "Jean Dupont" in page.text
    assert "1 customer" in page.text
    rows = client.get("/customers", params={"q": "dupnot"}, headers={"HX-Request": "true"})
    assert "<html" not in rows.text
    assert "Close matches" in rows.text and "Jean Dupont" in rows.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"system": "nowhere"}, "there is no system"),
        ({"country": "XX"}, "is not an ISO 3166 country code"),
        ({"status": "gone"}, "status must be one of"),
    ],
)
def test_the_page_refuses_unknown_filters(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    page = client.get("/customers", params=params)
    assert page.status_code == 422
    assert message in page.text
