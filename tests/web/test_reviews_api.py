"""The stewardship API: the review queue, decisions and splits, with who may do what and
how bad requests are answered."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from accord.errors import Conflict
from accord.golden.resolve import resolve
from accord.govern import audit, identity
from accord.govern.permissions import Role
from accord.settings import Settings
from accord.store import stewardship
from accord.store.engine import writing
from accord.store.tables import audit_log
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob
from tests.web.stewarding import C1, C2, C3, held_for_review

PASSWORD = "a long enough password"
USERS = {
    "vera": Role.VIEWER,
    "otto": Role.OPERATOR,
    "stewie": Role.STEWARD,
    "ada": Role.ADMIN,
}


@dataclass
class Api:
    """A client on the app, the store behind it, and the ids of the two reviews:
    `held` (C2 - C3, open: held because C1 and C3 were decided different) and
    `withdrawn` (C1 - C4, queued once, withdrawn by the next resolve).
    Customers: C0000001 = C1 + C2, C0000002 = Bob (C4), C0000003 = C3."""

    client: TestClient
    workspace: Workspace
    held: int
    withdrawn: int

    def sign_in(self, username: str) -> None:
        """Sign in as one of USERS, creating the user on first use (hashing a password
        takes a while, so only the users a test needs are made)."""
        with writing(self.workspace.engine) as conn, contextlib.suppress(Conflict):
            identity.create_user(conn, username, PASSWORD, USERS[username], created_by="t")
        response = self.client.post(
            "/api/v1/session", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text

    def resolve(self) -> dict[tuple[str, str], str]:
        engine, project = self.workspace.engine, self.workspace.project
        return resolve(engine, project, actor="test").assignment


def _api(workspace: Workspace, tmp_path: Path) -> Iterator[Api]:
    reviews = held_for_review(workspace, anna_chain_and_bob(), tmp_path)
    assert set(reviews.values()) == {
        (reviews["C2", "C3"][0], "open"),
        (reviews["C1", "C4"][0], "withdrawn"),
    }
    with TestClient(create_app(workspace)) as client:
        yield Api(client, workspace, reviews["C2", "C3"][0], reviews["C1", "C4"][0])


@pytest.fixture
def api(workspace: Workspace, tmp_path: Path) -> Iterator[Api]:
    """On each store in turn."""
    yield from _api(workspace, tmp_path)


@pytest.fixture
def api_sqlite(sqlite_engine: Engine, demo_project_dir: Path, tmp_path: Path) -> Iterator[Api]:
    """On SQLite only: for the HTTP layer's own checks, which no store changes."""
    yield from _api(Workspace(demo_project_dir, sqlite_engine, Settings()), tmp_path)


def _error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == kind, body
    return body


def _endpoints(api: Api) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/api/v1/reviews", None),
        ("GET", f"/api/v1/reviews/{api.held}", None),
        ("POST", f"/api/v1/reviews/{api.held}/decision", {"decision": "same"}),
        ("POST", "/api/v1/customers/C0000001/split", {"records": [SPLIT_C2]}),
    ]


SPLIT_C2 = {"system": "crm", "source_id": "C2"}


# ---- on both stores: the steward's work


def test_a_steward_lists_reads_and_decides(api: Api) -> None:
    api.sign_in("stewie")
    client = api.client

    page = client.get("/api/v1/reviews").json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
    [item] = page["items"]
    assert item["id"] == api.held
    assert item["left"] == {"system": "crm", "source_id": "C2"}
    assert item["right"] == {"system": "crm", "source_id": "C3"}
    assert (item["status"], item["probability"], item["match_weight"]) == ("open", 1.0, None)
    assert "steward" in item["reason"]
    assert item["first_seen_at"].endswith(("Z", "+00:00"))
    assert "explanation" not in item
    withdrawn = client.get("/api/v1/reviews", params={"status": "withdrawn"}).json()
    assert [i["id"] for i in withdrawn["items"]] == [api.withdrawn]
    assert withdrawn["items"][0]["left"]["source_id"] == "C1"  # stored in order
    paged = client.get("/api/v1/reviews", params={"limit": 1, "offset": 1}).json()
    assert (paged["items"], paged["total"], paged["offset"]) == ([], 1, 1)

    review = client.get(f"/api/v1/reviews/{api.held}").json()
    assert (review["explanation"], review["decision"]) == ({}, None)
    left, right = review["records"]
    assert (left["source_id"], right["source_id"]) == ("C2", "C3")
    assert left["data"]["email"] == "anna@x.org"
    assert (left["golden"]["golden_id"], right["golden"]["golden_id"]) == ("C0000001", "C0000003")

    response = client.post(
        f"/api/v1/reviews/{api.held}/decision",
        json={"decision": "same", "note": "same phone, same Anna"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "left": ["crm", "C2"],
        "right": ["crm", "C3"],
        "decision": "same",
        "note": "same phone, same Anna",
        "takes_effect": "at the next resolve",
    }
    review = client.get(f"/api/v1/reviews/{api.held}").json()
    assert review["status"] == "decided"
    assert (review["decision"]["decision"], review["decision"]["decided_by"]) == (
        "same",
        "user:stewie",
    )
    assert client.get("/api/v1/reviews", params={"status": "decided"}).json()["total"] == 1
    with api.workspace.engine.connect() as conn:
        event = conn.execute(
            select(audit_log).where(
                audit_log.c.action == "match.decided", audit_log.c.actor == "user:stewie"
            )
        ).one()
        assert audit.verify(conn).ok
    assert (event.actor, event.subject_id) == ("user:stewie", "crm:C2|crm:C3")

    assignment = api.resolve()  # it takes effect at the next resolve
    assert assignment[C2] == assignment[C3] != assignment[C1]


def test_a_withdrawn_review_cannot_be_decided(api: Api) -> None:
    api.sign_in("stewie")
    response = api.client.post(
        f"/api/v1/reviews/{api.withdrawn}/decision", json={"decision": "different"}
    )
    body = _error(response, 409, "Conflict")
    assert "withdrawn" in body["message"]
    assert body["hint"]
    assert api.client.get(f"/api/v1/reviews/{api.withdrawn}").json()["status"] == "withdrawn"


def test_a_steward_splits_a_customer(api: Api) -> None:
    api.sign_in("stewie")
    response = api.client.post(
        "/api/v1/customers/C0000001/split", json={"records": [SPLIT_C2], "note": "two people"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "golden_id": "C0000001",
        "split_out": [["crm", "C2"]],
        "decisions": 1,
        "takes_effect": "at the next resolve",
    }
    members = api.client.get("/api/v1/customers/C0000001").json()["members"]
    assert [m["source_id"] for m in members] == ["C1", "C2"]  # nothing moves yet

    assignment = api.resolve()

    assert assignment[C1] == "C0000001"
    # C2 leaves C1; nothing keeps it from C3 any more, so the held link now joins them
    assert assignment[C2] == assignment[C3] == "C0000003"
    members = api.client.get("/api/v1/customers/C0000001").json()["members"]
    assert [m["source_id"] for m in members] == ["C1"]
    # the held C2 - C3 link is no longer in doubt: its review is withdrawn
    withdrawn = api.client.get("/api/v1/reviews", params={"status": "withdrawn"}).json()
    assert {i["id"] for i in withdrawn["items"]} == {api.held, api.withdrawn}


# ---- the HTTP layer's own checks (SQLite)


def test_every_endpoint_needs_authentication(api_sqlite: Api) -> None:
    for method, path, body in _endpoints(api_sqlite):
        response = api_sqlite.client.request(method, path, json=body)
        _error(response, 401, "NotAuthenticated")
        assert response.headers["www-authenticate"] == "Bearer"
        if method == "POST":  # authentication comes before the body: still 401
            response = api_sqlite.client.request(method, path, json={"bogus": 1})
            _error(response, 401, "NotAuthenticated")


def test_a_viewer_may_do_nothing_here(api_sqlite: Api) -> None:
    api_sqlite.sign_in("vera")
    for method, path, body in _endpoints(api_sqlite):
        refused = _error(api_sqlite.client.request(method, path, json=body), 403, "NotAllowed")
        needed = "matches:read" if method == "GET" else "matches:decide"
        assert needed in refused["message"], (method, path)


def test_an_operator_reads_the_queue_but_may_not_decide_or_split(api_sqlite: Api) -> None:
    api_sqlite.sign_in("otto")
    client = api_sqlite.client
    assert client.get("/api/v1/reviews").json()["total"] == 1
    assert client.get(f"/api/v1/reviews/{api_sqlite.held}").status_code == 200
    for method, path, body in _endpoints(api_sqlite)[2:]:
        refused = _error(client.request(method, path, json=body), 403, "NotAllowed")
        assert "matches:decide" in refused["message"]
    assert client.get(f"/api/v1/reviews/{api_sqlite.held}").json()["status"] == "open"
    with api_sqlite.workspace.engine.connect() as conn:
        assert stewardship.decisions(conn) == {(C1, C3): "different"}  # only the setup's


def test_an_admin_decides_and_may_change_the_decision(api_sqlite: Api) -> None:
    api_sqlite.sign_in("ada")
    path = f"/api/v1/reviews/{api_sqlite.held}/decision"
    assert api_sqlite.client.post(path, json={"decision": "same"}).status_code == 200
    changed = api_sqlite.client.post(path, json={"decision": "different", "note": "no"})
    assert changed.status_code == 200
    decision = api_sqlite.client.get(f"/api/v1/reviews/{api_sqlite.held}").json()["decision"]
    assert (decision["decision"], decision["note"], decision["decided_by"]) == (
        "different",
        "no",
        "user:ada",
    )


def test_a_system_key_may_not_read_or_decide(api_sqlite: Api) -> None:
    with writing(api_sqlite.workspace.engine) as conn:
        key = identity.create_api_key(conn, "crm", created_by="test")
    for method, path, body in _endpoints(api_sqlite):
        response = api_sqlite.client.request(method, path, json=body, headers={"X-API-Key": key})
        _error(response, 403, "NotAllowed")


def test_unknown_reviews_and_customers_are_404(api_sqlite: Api) -> None:
    api_sqlite.sign_in("stewie")
    client = api_sqlite.client
    for response in [
        client.get("/api/v1/reviews/999999"),
        client.post("/api/v1/reviews/999999/decision", json={"decision": "same"}),
    ]:
        assert "no review" in _error(response, 404, "NotFound")["message"]
    # an id no row can have is not valid at all: 422, saying where
    for bad in ("-1", "0", str(2**63)):
        body = _error(client.get(f"/api/v1/reviews/{bad}"), 422, "InputRejected")
        assert body["problems"][0]["where"] == "path.review_id", body
    split = client.post("/api/v1/customers/C0000404/split", json={"records": [SPLIT_C2]})
    assert "no active customer" in _error(split, 404, "NotFound")["message"]


def test_bad_decision_bodies_are_422(api_sqlite: Api) -> None:
    api_sqlite.sign_in("stewie")
    client, path = api_sqlite.client, f"/api/v1/reviews/{api_sqlite.held}/decision"
    for body in [
        {"decision": "maybe"},
        {"decision": "SAME"},
        {"decision": None},
        {},
        {"note": "no decision"},
        {"decision": "same", "note": "x" * 2001},
        {"decision": "same", "note": 5},
        ["same"],
    ]:
        assert client.post(path, json=body).status_code == 422, body
    not_json = client.post(
        path,
        content=b"decision=same",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 422
    assert client.post("/api/v1/reviews/x/decision", json={"decision": "same"}).status_code == 422
    assert client.get(f"/api/v1/reviews/{api_sqlite.held}").json()["status"] == "open"

    note = "ü" * 2000  # the longest note is fine
    accepted = client.post(path, json={"decision": "same", "note": note})
    assert accepted.status_code == 200
    assert accepted.json()["note"] == note


def test_bad_queue_parameters_are_422(api_sqlite: Api) -> None:
    api_sqlite.sign_in("stewie")
    for params in [
        {"limit": 0},
        {"limit": 201},
        {"offset": -1},
        {"status": "bogus"},
        {"status": "OPEN"},
        {"limit": "ten"},
    ]:
        response = api_sqlite.client.get("/api/v1/reviews", params=params)
        assert response.status_code == 422, params
    assert api_sqlite.client.get("/api/v1/reviews/first").status_code == 422
    assert api_sqlite.client.get("/api/v1/reviews", params={"limit": 200}).status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"records": [{"system": "crm", "source_id": "C4"}]}, "crm:C4 not in C0000001"),
        ({"records": [{"system": "crm", "source_id": "C1"}, SPLIT_C2]}, "leave at least one"),
        ({"records": []}, None),
        ({}, None),
        ({"records": [{"system": "crm"}]}, None),
        ({"records": [{"system": "", "source_id": "C1"}]}, None),
        ({"records": [{"system": "crm", "source_id": "x" * 257}]}, None),
        ({"records": ["crm:C1"]}, None),
        ({"records": [SPLIT_C2], "note": "x" * 2001}, None),
    ],
    ids=[
        "not-a-member",
        "everything",
        "nothing",
        "no-records",
        "no-source-id",
        "empty-system",
        "id-too-long",
        "not-an-object",
        "note-too-long",
    ],
)
def test_bad_splits_are_422(api_sqlite: Api, body: Any, message: str | None) -> None:
    api_sqlite.sign_in("stewie")
    response = api_sqlite.client.post("/api/v1/customers/C0000001/split", json=body)
    assert response.status_code == 422, response.text
    if message is not None:
        assert message in _error(response, 422, "InputRejected")["message"]
    with api_sqlite.workspace.engine.connect() as conn:
        assert stewardship.decisions(conn) == {(C1, C3): "different"}  # only the setup's


def test_the_schema_lists_the_stewardship_endpoints(api_sqlite: Api) -> None:
    api_sqlite.sign_in("vera")
    paths = api_sqlite.client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/reviews",
        "/api/v1/reviews/{review_id}",
        "/api/v1/reviews/{review_id}/decision",
        "/api/v1/customers/{golden_id}/split",
    } <= set(paths)
    assert set(paths["/api/v1/reviews/{review_id}/decision"]) == {"post"}


def test_a_review_id_beyond_64_bits_is_not_a_server_error(api: Api) -> None:
    api.sign_in("stewie")  # creates the user
    with TestClient(create_app(api.workspace), raise_server_exceptions=False) as client:
        credentials = {"username": "stewie", "password": PASSWORD}
        assert client.post("/api/v1/session", json=credentials).status_code == 200
        huge = 2**63
        assert client.get(f"/api/v1/reviews/{huge}").status_code in {404, 422}
        decided = client.post(f"/api/v1/reviews/{huge}/decision", json={"decision": "same"})
        assert decided.status_code in {404, 422}


def test_a_cross_site_form_cannot_decide_with_the_session_cookie(api_sqlite: Api) -> None:
    """CSRF: a form on another site can post with the browser's cookie, but only as a
    form or plain text; the API takes JSON only, so such a post decides nothing."""
    api_sqlite.sign_in("stewie")
    path = f"/api/v1/reviews/{api_sqlite.held}/decision"
    for content_type, body in [
        ("application/x-www-form-urlencoded", "decision=same"),
        ("text/plain", '{"decision": "same"}'),
        (
            "multipart/form-data; boundary=x",
            '--x\r\nContent-Disposition: form-data; name="decision"\r\n\r\nsame\r\n--x--\r\n',
        ),
    ]:
        response = api_sqlite.client.post(
            path, content=body, headers={"content-type": content_type}
        )
        assert response.status_code == 422, (content_type, response.text)
    review = api_sqlite.client.get(f"/api/v1/reviews/{api_sqlite.held}").json()
    assert review["decision"] is None
    assert review["status"] == "open"
