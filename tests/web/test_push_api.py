"""The push API (`POST /api/v1/systems/{system}/records`), through HTTP on both stores:
each record accepted, a duplicate or rejected with its reasons; stored before the
answer; a retry with the same Idempotency-Key answered the same and storing nothing;
bad bodies refused with what is wrong, and nothing of them stored."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake import push
from accord.store.engine import writing
from accord.store.tables import audit_log, load, push_request, quarantine, source_record
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row

PASSWORD = "a long enough password"


@pytest.fixture
def client(workspace: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(workspace)) as test_client:
        yield test_client


@pytest.fixture
def crm_key(workspace: Workspace) -> str:
    with writing(workspace.engine) as conn:
        return identity.create_api_key(conn, "crm", created_by="test")


def _push(
    client: TestClient,
    key: str,
    records: list[Any],
    *,
    idempotency_key: str | None = None,
    system: str = "crm",
    gzipped: bool = False,
) -> Any:
    body = json.dumps({"records": records}).encode()
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return client.post(f"/api/v1/systems/{system}/records", content=body, headers=headers)


def _count(workspace: Workspace, table: Any) -> int:
    with workspace.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_each_record_is_accepted_a_duplicate_or_rejected_with_its_reasons(
    client: TestClient, workspace: Workspace, crm_key: str
) -> None:
    response = _push(
        client,
        crm_key,
        [
            crm_row("C1"),
            crm_row("C2", Email="not an email", FirstName="Ben"),
            crm_row("C1"),  # the same again in the batch
            crm_row("C3", Id=""),  # no source id
            ["not", "an", "object"],
        ],
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["counts"] == {"accepted": 2, "duplicate": 1, "rejected": 2}
    records = answer["records"]
    assert [r["record"] for r in records] == [f"records[{i}]" for i in range(5)]
    assert [r["status"] for r in records] == [
        "accepted",
        "accepted",
        "duplicate",
        "rejected",
        "rejected",
    ]
    assert records[0] == {
        "record": "records[0]",
        "source_id": "C1",
        "status": "accepted",
        "version": 1,
    }
    assert records[1]["flags"][0]["field"] == "email"  # flagged, not fixed, still stored
    assert records[3]["reasons"][0]["code"] == "source_id.missing"
    assert records[4]["reasons"] == [
        {"code": "record.json", "message": "a record must be an object"}
    ]
    assert answer["replayed"] is False
    assert _count(workspace, source_record) == 2
    assert _count(workspace, quarantine) == 2
    with workspace.engine.connect() as conn:
        row = conn.execute(select(load.c.channel, load.c.status, load.c.counts)).one()
        assert (row.channel, row.status) == ("api", "done")
        assert row.counts["new"] == 2 and row.counts["quarantined"] == 2

    again = _push(client, crm_key, [crm_row("C1"), crm_row("C2", FirstName="Benjamin")])
    assert [r["status"] for r in again.json()["records"]] == ["duplicate", "accepted"]
    assert again.json()["records"][1]["version"] == 2


def test_a_retry_with_the_same_idempotency_key_gets_the_same_answer_and_stores_nothing(
    client: TestClient, workspace: Workspace, crm_key: str
) -> None:
    batch = [crm_row("C1"), crm_row("C2", Id="")]
    first = _push(client, crm_key, batch, idempotency_key="batch-0001")
    audit_entries = _count(workspace, audit_log)
    retry = _push(client, crm_key, batch, idempotency_key="batch-0001", gzipped=True)
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json() | {"replayed": True}
    assert _count(workspace, load) == 1
    assert _count(workspace, quarantine) == 1
    assert _count(workspace, audit_log) == audit_entries
    assert _count(workspace, push_request) == 1

    other_body = _push(client, crm_key, [crm_row("C9")], idempotency_key="batch-0001")
    assert other_body.status_code == 422
    assert "used before with another body" in other_body.json()["message"]
    assert _count(workspace, source_record) == 1

    # without a key, the same batch again is answered on its own: all duplicates
    plain = _push(client, crm_key, batch)
    assert [r["status"] for r in plain.json()["records"]] == ["duplicate", "rejected"]


def test_only_the_systems_own_key_may_push_its_records(
    client: TestClient, workspace: Workspace, crm_key: str
) -> None:
    with writing(workspace.engine) as conn:
        erp_key = identity.create_api_key(conn, "erp", created_by="test")
        identity.create_user(conn, "admin", PASSWORD, Role.ADMIN, created_by="test")
    assert _push(client, erp_key, [crm_row("C1")]).status_code == 403
    assert _push(client, crm_key + "x", [crm_row("C1")]).status_code == 401
    unknown = _push(client, crm_key, [crm_row("C1")], system="nowhere")
    assert unknown.status_code == 403
    client.post("/api/v1/session", json={"username": "admin", "password": PASSWORD})
    by_person = client.post("/api/v1/systems/crm/records", json={"records": [crm_row("C1")]})
    assert by_person.status_code == 403
    assert "crm's own API key" in by_person.json()["hint"]
    assert _count(workspace, source_record) == 0


@pytest.mark.parametrize(
    "case",
    [
        (b"{not json", {}, 422, "not valid JSON"),
        (b'[{"Id": "C1"}]', {}, 422, "a JSON object with a list of records"),
        (b'{"records": {"Id": "C1"}}', {}, 422, "a JSON object with a list of records"),
        (b'{"records": []}', {}, 422, "holds no records"),
        (b"\xff\xfe{}", {}, 422, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, {}, 422, "nested too deeply"),
        (b'{"records": [{}]}', {"Content-Encoding": "br"}, 422, "Content-Encoding 'br'"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 422, "not valid gzip"),
        (
            gzip.compress(b'{"records": [{}]}')[:-12],
            {"Content-Encoding": "gzip"},
            422,
            "ends early",
        ),
        (b"x" * (push.MAX_BODY_BYTES + 1), {}, 413, "the limit is"),
        (
            gzip.compress(b" " * (push.MAX_DOCUMENT_BYTES + 1)),  # a gzip bomb, small
            {"Content-Encoding": "gzip"},
            413,
            "unpacks to more than",
        ),
        (
            json.dumps({"records": [{}] * (push.MAX_RECORDS + 1)}).encode(),
            {},
            413,
            "split it",
        ),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused_saying_what_is_wrong_and_nothing_is_stored(
    client: TestClient,
    workspace: Workspace,
    crm_key: str,
    case: tuple[bytes, dict[str, str], int, str],
) -> None:
    body, headers, status, message = case
    response = client.post(
        "/api/v1/systems/crm/records",
        content=body,
        headers={"X-API-Key": crm_key, "Content-Type": "application/json"} | headers,
    )
    assert response.status_code == status, response.text
    problem = response.json()
    assert message in problem["message"] + problem.get("hint", "")
    assert _count(workspace, load) == 0
    assert _count(workspace, source_record) == 0


def test_hostile_records_are_quarantined_and_the_rest_of_the_batch_is_stored(
    client: TestClient, workspace: Workspace, crm_key: str
) -> None:
    response = _push(
        client,
        crm_key,
        [
            crm_row("C1", FirstName="Anna\u0000"),  # PostgreSQL cannot hold a NUL
            crm_row("C2", LastName="\ud800"),  # a lone surrogate, as JSON allows
            crm_row("C3", Street="x" * 2_000_000),  # over max_field_bytes
            crm_row("C4", FirstName="'); DROP TABLE source_record; --"),
            crm_row("C5", City={"nested": ["deep", 1]}),  # type: ignore[arg-type]
            {"Id": "C6", "City": json.loads("[" * 900 + "]" * 900)},
        ],
    )
    assert response.status_code == 200, response.text
    statuses = {r["record"]: r for r in response.json()["records"]}
    assert statuses["records[0]"]["reasons"][0]["code"] == "encoding.invalid"
    assert statuses["records[1]"]["reasons"][0]["code"] == "encoding.invalid"
    assert statuses["records[2]"]["reasons"][0]["code"] == "field.too_large"
    assert statuses["records[3]"]["status"] == "accepted"
    assert "nested more than" in statuses["records[5]"]["reasons"][0]["message"]
    assert statuses["records[4]"]["flags"][0]["code"] == "value.structured"  # flagged, kept
    assert _count(workspace, source_record) == 2
    with workspace.engine.connect() as conn:
        kept = conn.execute(select(quarantine.c.raw).order_by(quarantine.c.id)).scalars().all()
    assert "\\u0000" in kept[0] and "\x00" not in kept[0]  # kept escaped, loses nothing
