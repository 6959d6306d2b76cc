"""The demo peers, as Accord meets them: real processes with their own SQLite stores,
spoken to over real HTTP.

One billing peer serves the module (started with --allow-reset and emptied before each
test); the tests that need another setting (a rate limit, a crash) start their own."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.demo.peers import PeerProcess, PeerStartError

TOKEN = "peer-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerProcess]:
    db = tmp_path_factory.mktemp("peer") / "billing.sqlite3"
    with PeerProcess("billing", db, token=TOKEN, allow_reset=True) as process:
        yield process


def _client(peer: PeerProcess) -> httpx2.Client:
    return httpx2.Client(base_url=peer.url, headers=AUTH, timeout=10)


@pytest.fixture
def client(peer: PeerProcess) -> Iterator[httpx2.Client]:
    """A client of the module's peer, emptied of records and faults."""
    with _client(peer) as http:
        assert http.post("/_reset").status_code == 204
        yield http


def _put(
    http: httpx2.Client, record_id: str, fields: dict[str, Any], **headers: str
) -> httpx2.Response:
    return http.put(f"/accounts/{record_id}", json={"fields": fields}, headers=headers)


def _log(http: httpx2.Client, after_seq: int = 0) -> list[dict[str, Any]]:
    response = http.get("/_log", params={"after_seq": after_seq})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


def _faults(http: httpx2.Client, **faults: Any) -> None:
    response = http.put("/_faults", json=faults)
    assert response.status_code == 200, response.text


# authentication


def test_health_is_open_and_everything_else_needs_the_token(peer: PeerProcess) -> None:
    with httpx2.Client(base_url=peer.url, timeout=10) as anonymous:
        health = anonymous.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "kind": "billing", "resource": "accounts"}
        for method, path in [
            ("GET", "/accounts"),
            ("GET", "/accounts/a"),
            ("PUT", "/accounts/a"),
            ("DELETE", "/accounts/a"),
            ("POST", "/accounts:batch"),
            ("GET", "/_faults"),
            ("PUT", "/_faults"),
            ("GET", "/_log"),
            ("POST", "/_reset"),
        ]:
            response = anonymous.request(method, path, json={"fields": {}})
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"] == "unauthorized"
        wrong = anonymous.get("/accounts", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = anonymous.get("/accounts", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401


# single requests


def test_create_update_read_delete_and_tombstone(client: httpx2.Client) -> None:
    created = _put(client, "A-1", {"name": "Ada", "tags": ["vip"], "address": {"city": "Oslo"}})
    assert created.status_code == 201
    assert created.headers["ETag"] == '"1"'
    assert created.json()["fields"] == {"name": "Ada", "tags": ["vip"], "address": {"city": "Oslo"}}
    assert created.json()["version"] == 1

    read = client.get("/accounts/A-1")
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert read.json() == created.json()

    updated = _put(client, "A-1", {"name": "Ada Lovelace"})  # a full replacement
    assert (updated.status_code, updated.headers["ETag"]) == (200, '"2"')
    assert client.get("/accounts/A-1").json()["fields"] == {"name": "Ada Lovelace"}

    same = _put(client, "A-1", {"name": "Ada Lovelace"})  # a no-op changes nothing
    assert (same.status_code, same.headers["ETag"]) == (200, '"2"')
    assert same.json() == updated.json()

    deleted = client.delete("/accounts/A-1")
    assert (deleted.status_code, deleted.headers["ETag"], deleted.content) == (204, '"3"', b"")
    gone = client.get("/accounts/A-1")
    assert gone.status_code == 410
    assert gone.headers["ETag"] == '"3"'
    assert gone.json()["record"]["version"] == 3
    assert gone.json()["record"]["deleted"] is True
    again = client.delete("/accounts/A-1")  # already deleted: no new change
    assert (again.status_code, again.headers["ETag"]) == (204, '"3"')

    assert client.get("/accounts/nobody").status_code == 404
    assert client.delete("/accounts/nobody").status_code == 404

    revived = _put(client, "A-1", {"name": "Ada"})  # versions go on after a tombstone
    assert (revived.status_code, revived.headers["ETag"]) == (201, '"4"')

    log = _log(client)
    assert [(e["seq"], e["id"], e["op"], e["version"]) for e in log] == [
        (1, "A-1", "put", 1),
        (2, "A-1", "put", 2),
        (3, "A-1", "delete", 3),
        (4, "A-1", "put", 4),
    ]
    assert log[1]["fields"] == {"name": "Ada Lovelace"}
    assert log[2]["fields"] is None


def test_list_pages_by_id_and_shows_tombstones_only_when_asked(client: httpx2.Client) -> None:
    for record_id in ["c", "a", "e", "b", "d"]:
        assert _put(client, record_id, {"id": record_id}).status_code == 201
    assert client.delete("/accounts/c").status_code == 204

    first = client.get("/accounts", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ["a", "b"]
    assert first["next"] == "b"
    second = client.get("/accounts", params={"limit": 2, "after": first["next"]}).json()
    assert [item["id"] for item in second["items"]] == ["d", "e"]
    assert second["next"] is None

    everything = client.get("/accounts", params={"include_deleted": "true"}).json()
    assert [(i["id"], i["deleted"]) for i in everything["items"]] == [
        ("a", False), ("b", False), ("c", True), ("d", False), ("e", False),
    ]  # fmt: skip
    assert everything["next"] is None
    assert client.get("/accounts", params={"limit": 1001}).status_code == 422


def test_if_match_refuses_a_stale_version_with_the_current_record(client: httpx2.Client) -> None:
    _put(client, "A-1", {"name": "Ada"})
    _put(client, "A-1", {"name": "Ada L."})  # someone edits in billing: now at version 2

    stale = _put(client, "A-1", {"name": "from Accord"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["ETag"] == '"2"'
    body = stale.json()
    assert body["error"] == "precondition_failed"
    assert body["etag"] == '"2"'
    assert body["current"]["fields"] == {"name": "Ada L."}
    assert client.get("/accounts/A-1").json()["version"] == 2  # nothing written

    fresh = _put(client, "A-1", {"name": "from Accord"}, **{"If-Match": '"2"'})
    assert (fresh.status_code, fresh.headers["ETag"]) == (200, '"3"')
    assert _put(client, "A-1", {"x": 1}, **{"If-Match": 'W/"3"'}).status_code == 412  # strong
    assert _put(client, "A-1", {"x": 1}, **{"If-Match": '"9", "3"'}).status_code == 200

    absent = _put(client, "nobody", {"x": 1}, **{"If-Match": '"1"'})
    assert absent.status_code == 412
    assert absent.json()["current"] is None
    assert client.get("/accounts/nobody").status_code == 404

    stale_delete = client.delete("/accounts/A-1", headers={"If-Match": '"1"'})
    assert stale_delete.status_code == 412
    assert client.delete("/accounts/A-1", headers={"If-Match": '"4"'}).status_code == 204
    on_tombstone = _put(client, "A-1", {"x": 2}, **{"If-Match": '"5"'})
    assert on_tombstone.status_code == 412
    assert on_tombstone.json()["current"]["deleted"] is True

    unreadable = _put(client, "A-1", {"x": 1}, **{"If-Match": "5"})  # no quotes
    assert unreadable.status_code == 422
    assert "If-Match" in unreadable.json()["message"]


def test_if_none_match_star_creates_only_what_is_not_there(client: httpx2.Client) -> None:
    create = {"If-None-Match": "*"}
    assert _put(client, "A-1", {"name": "Ada"}, **create).status_code == 201
    taken = _put(client, "A-1", {"name": "Other"}, **create)
    assert taken.status_code == 412
    assert taken.json()["current"]["fields"] == {"name": "Ada"}
    client.delete("/accounts/A-1")
    recreated = _put(client, "A-1", {"name": "Ada again"}, **create)  # a tombstone is no record
    assert (recreated.status_code, recreated.headers["ETag"]) == (201, '"3"')


def test_an_idempotency_key_applies_once_and_replays_its_answer(client: httpx2.Client) -> None:
    key = {"Idempotency-Key": "sync-A-1-v1"}
    first = _put(client, "A-1", {"name": "Ada"}, **key)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    _put(client, "A-1", {"name": "edited in billing"})

    retry = _put(client, "A-1", {"name": "Ada"}, **key)
    assert retry.status_code == 201  # the answer given the first time, not a new write
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.headers["ETag"] == '"1"'
    assert retry.json() == first.json()
    assert client.get("/accounts/A-1").json()["fields"] == {"name": "edited in billing"}

    reused = _put(client, "A-1", {"name": "something else"}, **key)
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"

    delete_key = {"Idempotency-Key": "sync-A-1-delete"}
    assert client.delete("/accounts/A-1", headers=delete_key).status_code == 204
    replayed = client.delete("/accounts/A-1", headers=delete_key)
    assert (replayed.status_code, replayed.headers["Idempotent-Replayed"]) == (204, "true")

    log = _log(client)
    assert [(e["op"], e["key"]) for e in log] == [
        ("put", "sync-A-1-v1"),
        ("put", None),
        ("delete", "sync-A-1-delete"),
    ]


# batches


def test_a_batch_applies_each_operation_in_order_with_its_own_status(
    client: httpx2.Client,
) -> None:
    _put(client, "B", {"name": "Bea"})  # version 1
    operations = [
        {"op": "put", "id": "A", "fields": {"name": "Ada"}, "key": "k-A"},
        {"op": "put", "id": "A", "fields": {"name": "Ada L."}, "if_match": '"1"'},
        {"op": "put", "id": "B", "fields": {"name": "Bob"}, "if_match": '"7"'},
        {"op": "put", "id": "C", "fields": {"name": "Cy"}, "if_none_match": "*"},
        {"op": "delete", "id": "nobody"},
        {"op": "put", "id": "A", "fields": {"name": "Ada"}, "key": "k-A"},  # a replay
        {"op": "delete", "id": "B", "if_match": '"1"', "key": "k-del-B"},
        {"op": "put", "id": "C", "fields": {"name": "Cy"}},  # a no-op
    ]
    response = client.post("/accounts:batch", json={"operations": operations})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["id"], r["status"], r["etag"], r["replayed"]) for r in results] == [
        ("A", 201, '"1"', False),
        ("A", 200, '"2"', False),
        ("B", 412, '"1"', False),
        ("C", 201, '"1"', False),
        ("nobody", 404, None, False),
        ("A", 201, '"1"', True),
        ("B", 204, '"2"', False),
        ("C", 200, '"1"', False),
    ]
    assert results[1]["record"]["fields"] == {"name": "Ada L."}
    assert results[2]["error"]["current"]["fields"] == {"name": "Bea"}
    assert results[4]["error"]["error"] == "not_found"
    assert results[5]["record"] == results[0]["record"]
    assert results[6]["record"]["deleted"] is True

    log = _log(client)
    assert [(e["id"], e["op"], e["version"]) for e in log] == [
        ("B", "put", 1), ("A", "put", 1), ("A", "put", 2), ("C", "put", 1), ("B", "delete", 2),
    ]  # fmt: skip
    # a key applied in a batch answers a single request too
    single = _put(client, "A", {"name": "Ada"}, **{"Idempotency-Key": "k-A"})
    assert (single.status_code, single.headers["Idempotent-Replayed"]) == (201, "true")


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"op": "upsert", "id": "x", "fields": {}}, "operations[2].op must be 'put' or 'delete'"),
        ({"op": "put", "id": "a/b", "fields": {}}, "operations[2].id 'a/b' must not contain '/'"),
        ({"op": "put", "id": "x" * 201, "fields": {}}, "operations[2].id must be 1 to 200"),
        ({"op": "put", "id": "", "fields": {}}, "operations[2].id must be 1 to 200"),
        ({"op": "put", "id": 7, "fields": {}}, "operations[2].id must be a string"),
        ({"op": "put", "id": "x"}, "operations[2] is a put without 'fields'"),
        ({"op": "put", "id": "x", "fields": [1]}, "operations[2].fields must be a JSON object"),
        ({"op": "delete", "id": "x", "fields": {}}, "operations[2] is a delete"),
        ({"op": "put", "id": "x", "fields": {}, "if_match": "3"}, "operations[2].if_match"),
        ({"op": "put", "id": "x", "fields": {}, "extra": 1}, "operations[2] has unknown keys"),
        ("put x", "operations[2] must be an object"),
    ],
)
def test_a_malformed_batch_is_refused_whole_naming_the_operation(
    client: httpx2.Client, bad: Any, expected: str
) -> None:
    good = {"op": "put", "id": "ok", "fields": {"n": 1}}
    response = client.post("/accounts:batch", json={"operations": [good, good, bad, good]})
    assert response.status_code == 422
    assert expected in response.json()["message"]
    assert _log(client) == []  # nothing of it was applied


def test_a_batch_takes_its_keys_and_conditions_per_operation(client: httpx2.Client) -> None:
    operations = {"operations": [{"op": "put", "id": "A", "fields": {}}]}
    for header, value in [("Idempotency-Key", "k"), ("If-Match", '"1"'), ("If-None-Match", "*")]:
        response = client.post("/accounts:batch", json=operations, headers={header: value})
        assert response.status_code == 422
        assert f"no {header} header" in response.json()["message"]
    assert _log(client) == []


def test_a_batch_over_1000_operations_is_too_large(client: httpx2.Client) -> None:
    operations = [{"op": "delete", "id": f"r{i}"} for i in range(1001)]
    response = client.post("/accounts:batch", json={"operations": operations})
    assert response.status_code == 413
    assert "1,001 operations" in response.json()["message"]
    full = client.post("/accounts:batch", json={"operations": operations[:1000]})
    assert full.status_code == 200
    assert {r["status"] for r in full.json()["results"]} == {404}


# bodies and ids


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"fields": NaN}', "NaN is not a JSON number"),
        (b"[]", "must be a JSON object"),
        (b'{"fields": "x"}', "'fields' must be a JSON object"),
        (b'{"field": {}}', "unknown keys ['field']"),
        (b"{}", "has no 'fields'"),
        (b'{"fields": {}}\xff', "not UTF-8"),
    ],
)
def test_an_unreadable_put_is_refused_with_what_is_wrong(
    client: httpx2.Client, body: bytes, expected: str
) -> None:
    response = client.put("/accounts/A-1", content=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert expected in response.json()["message"]


def test_ids_are_checked(client: httpx2.Client) -> None:
    assert _put(client, "x" * 200, {}).status_code == 201
    assert _put(client, "Ünïcode id with spaces", {}).status_code == 201
    too_long = _put(client, "x" * 201, {})
    assert too_long.status_code == 422
    assert "1 to 200 characters" in too_long.json()["message"]
    slash = _put(client, "a%2Fb", {})
    assert slash.status_code == 422
    assert "must not contain '/'" in slash.json()["message"]
    control = _put(client, "a%09b", {})
    assert control.status_code == 422
    assert "not printable" in control.json()["message"]


def test_oversized_bodies_and_records_are_refused(client: httpx2.Client) -> None:
    huge = json.dumps({"fields": {"blob": "x" * (1024 * 1024 + 10)}}).encode()
    response = client.put("/accounts/A-1", content=huge)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"

    record = _put(client, "A-1", {"blob": "x" * (64 * 1024)})
    assert record.status_code == 413
    assert record.json()["error"] == "record_too_large"
    assert _put(client, "A-1", {"blob": "x" * (64 * 1024 - 20)}).status_code == 201
    assert client.get("/accounts/A-1").json()["version"] == 1


# the rate limit


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    # a service desk peer, without a token: no authentication at all
    with (
        PeerProcess("service_desk", tmp_path / "desk.sqlite3", rate_limit=4) as desk,
        httpx2.Client(base_url=desk.url, timeout=10) as http,
    ):
        answers = [http.get("/requesters") for _ in range(12)]
        statuses = [answer.status_code for answer in answers]
        assert statuses[:4] == [200] * 4  # a burst of one second's worth
        assert statuses.count(429) >= 6
        limited = answers[statuses.index(429)]
        retry_after = int(limited.headers["Retry-After"])
        assert retry_after >= 1
        assert limited.json()["error"] == "rate_limited"
        assert http.get("/health").status_code == 200  # never limited
        assert http.get("/_log").status_code == 200
        time.sleep(retry_after)
        assert http.get("/requesters").status_code == 200


# faults


def test_faults_are_set_shown_and_cleared(client: httpx2.Client) -> None:
    assert client.get("/_faults").json()["error_rate"] == 0.0
    _faults(client, error_rate=0.25, error_status=502, seed=3)
    shown = client.get("/_faults").json()
    assert (shown["error_rate"], shown["error_status"], shown["seed"]) == (0.25, 502, 3)
    assert shown["hang_seconds"] == 30.0
    assert client.delete("/_faults").status_code == 204
    assert client.get("/_faults").json()["error_rate"] == 0.0

    for bad, where in [
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_status": 404}, "error_status"),
        ({"panic": True}, "panic"),
    ]:
        response = client.put("/_faults", json=bad)
        assert response.status_code == 422
        assert where in response.json()["message"]


def test_injected_errors_refuse_before_anything_is_applied(client: httpx2.Client) -> None:
    _faults(client, error_rate=1.0, error_status=503)
    refused = _put(client, "A-1", {"name": "Ada"})
    assert refused.status_code == 503
    assert refused.json()["error"] == "injected_error"
    assert client.get("/accounts").status_code == 503
    batch = client.post("/accounts:batch", json={"operations": []})
    assert batch.status_code == 503
    # the endpoints that steer the peer are never faulted
    assert client.get("/health").status_code == 200
    assert client.get("/_faults").status_code == 200
    assert _log(client) == []


def test_a_seed_makes_the_faults_reproducible(client: httpx2.Client) -> None:
    def statuses() -> list[int]:
        _faults(client, error_rate=0.5, seed=42)
        return [client.get("/accounts").status_code for _ in range(30)]

    first = statuses()
    assert set(first) == {200, 500}
    assert statuses() == first


def test_throttling_answers_429_with_the_retry_after_asked(client: httpx2.Client) -> None:
    _faults(client, throttle_rate=1.0, throttle_retry_after=7)
    throttled = _put(client, "A-1", {"name": "Ada"})
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert _log(client) == []


def test_a_delay_holds_every_answer(client: httpx2.Client) -> None:
    _faults(client, delay_ms=300)
    started = time.monotonic()
    assert _put(client, "A-1", {"name": "Ada"}).status_code == 201
    assert time.monotonic() - started >= 0.3


def test_a_hung_write_lands_after_its_client_gave_up(client: httpx2.Client) -> None:
    _faults(client, timeout_rate=1.0, hang_seconds=1.0)
    with pytest.raises(httpx2.ReadTimeout):
        client.put("/accounts/A-1", json={"fields": {"name": "Ada"}}, timeout=0.2)
    client.delete("/_faults")
    assert client.get("/accounts/A-1").status_code == 404  # still hanging
    time.sleep(1.0)
    assert client.get("/accounts/A-1").json()["fields"] == {"name": "Ada"}

    _faults(client, timeout_rate=1.0, hang_seconds=0.4)
    started = time.monotonic()
    slow = client.get("/accounts/A-1", timeout=5)  # a patient client gets its answer
    assert slow.status_code == 200
    assert time.monotonic() - started >= 0.4


def test_a_keyed_retry_after_a_timeout_applies_the_write_once(client: httpx2.Client) -> None:
    _faults(client, timeout_rate=1.0, hang_seconds=1.0)
    key = {"Idempotency-Key": "sync-A-1-v1"}
    with pytest.raises(httpx2.ReadTimeout):
        client.put("/accounts/A-1", json={"fields": {"name": "Ada"}}, headers=key, timeout=0.2)
    client.delete("/_faults")
    retry = _put(client, "A-1", {"name": "Ada"}, **key)  # before the hung request wakes
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    time.sleep(1.2)  # the hung request has since found its key applied, and applied nothing
    assert [(e["id"], e["key"]) for e in _log(client)] == [("A-1", "sync-A-1-v1")]


def test_a_lost_answer_after_the_commit_is_recovered_by_its_key(client: httpx2.Client) -> None:
    _faults(client, fail_after_commit_rate=1.0)
    key = {"Idempotency-Key": "sync-A-1-v1"}
    lost = _put(client, "A-1", {"name": "Ada"}, **key)
    assert lost.status_code == 500
    batch = {
        "operations": [
            {"op": "put", "id": "B", "fields": {"name": "Bea"}, "key": "sync-B-v1"},
            {"op": "delete", "id": "A-1", "key": "sync-A-1-delete"},
        ]
    }
    assert client.post("/accounts:batch", json=batch).status_code == 500
    client.delete("/_faults")

    retry = _put(client, "A-1", {"name": "Ada"}, **key)
    assert (retry.status_code, retry.headers["Idempotent-Replayed"]) == (201, "true")
    assert retry.json()["version"] == 1
    retried = client.post("/accounts:batch", json=batch).json()["results"]
    assert [(r["status"], r["replayed"]) for r in retried] == [(201, True), (204, True)]
    assert [(e["id"], e["op"], e["key"]) for e in _log(client)] == [
        ("A-1", "put", "sync-A-1-v1"),
        ("B", "put", "sync-B-v1"),
        ("A-1", "delete", "sync-A-1-delete"),
    ]


# the process


def test_a_killed_peer_restarts_with_its_data_and_its_sequence(tmp_path: Path) -> None:
    db = tmp_path / "desk.sqlite3"
    desk = PeerProcess("service_desk", db, token=TOKEN)
    with desk, httpx2.Client(base_url=desk.url, headers=AUTH, timeout=10) as http:
        for n in range(3):
            response = http.put(f"/requesters/R{n}", json={"fields": {"n": n}})
            assert response.status_code == 201
        http.delete("/requesters/R0")
        url = desk.url
        desk.kill()
        assert not desk.running
        with pytest.raises(httpx2.TransportError):
            http.get("/requesters")

        desk.start()
        assert desk.url == url  # the same port again
        items = http.get("/requesters", params={"include_deleted": "true"}).json()["items"]
        assert [(i["id"], i["deleted"], i["change_seq"]) for i in items] == [
            ("R0", True, 4), ("R1", False, 2), ("R2", False, 3),
        ]  # fmt: skip
        assert http.put("/requesters/R1", json={"fields": {"n": 9}}).json()["change_seq"] == 5

        desk.restart()  # a clean stop and start
        assert http.get("/requesters/R1").json()["fields"] == {"n": 9}
    assert not desk.running

    # what Accord will poll: the peer's own table, by the change_seq watermark
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, version, deleted, change_seq FROM record WHERE change_seq > ?"
            " ORDER BY change_seq",
            (2,),
        ).fetchall()
    conn.close()
    assert rows == [("R2", 1, 0, 3), ("R0", 2, 1, 4), ("R1", 2, 0, 5)]


def test_a_peer_that_cannot_start_says_why(tmp_path: Path) -> None:
    peer = PeerProcess("billing", tmp_path / "missing" / "dir" / "billing.sqlite3")
    with pytest.raises(PeerStartError, match="cannot open the store"):
        peer.start()
    assert not peer.running


# a property: the peer is a simple model of records, versions and keys


@dataclass
class Model:
    records: dict[str, tuple[int, bool, dict[str, Any]]] = field(default_factory=dict)
    keys: dict[str, tuple[tuple[str, str, Any], int]] = field(default_factory=dict)
    writes: int = 0

    def apply(self, op: dict[str, Any]) -> int:
        """The status the peer must answer; records the write if it makes one."""
        key = op.get("key")
        request = (op["op"], op["id"], op.get("fields"))
        if key is not None and key in self.keys:
            first, status = self.keys[key]
            return status if first == request else 422
        status = self._write(op)
        if key is not None:
            self.keys[key] = (request, status)
        return status

    def _write(self, op: dict[str, Any]) -> int:
        current = self.records.get(op["id"])
        live = current[0] if current is not None and not current[1] else None
        if_match = op.get("if_match")
        if if_match is not None and (live is None or if_match not in ("*", f'"{live}"')):
            return 412
        if op.get("if_none_match") == "*" and live is not None:
            return 412
        if op["op"] == "put":
            if current is not None and live is not None and current[2] == op["fields"]:
                return 200
            self.records[op["id"]] = (1 if current is None else current[0] + 1, False, op["fields"])
            self.writes += 1
            return 201 if live is None else 200
        if current is None:
            return 404
        if current[1]:
            return 204
        self.records[op["id"]] = (current[0] + 1, True, current[2])
        self.writes += 1
        return 204


_OPERATIONS = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["put", "put", "delete"]),
        "id": st.sampled_from(["a", "b", "c"]),
        "fields": st.fixed_dictionaries({"n": st.integers(0, 2)}),
        "if_match": st.one_of(st.none(), st.none(), st.just("*"), st.integers(0, 4).map(str)),
        "if_none_match": st.one_of(st.none(), st.none(), st.just("*")),
        "key": st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
    }
).map(
    lambda op: {
        **op,
        "fields": op["fields"] if op["op"] == "put" else None,
        "if_match": op["if_match"] if op["if_match"] in (None, "*") else f'"{op["if_match"]}"',
    }
)


def _send(http: httpx2.Client, op: dict[str, Any]) -> int:
    headers = {
        name: op[field_name]
        for name, field_name in [
            ("If-Match", "if_match"),
            ("If-None-Match", "if_none_match"),
            ("Idempotency-Key", "key"),
        ]
        if op[field_name] is not None
    }
    if op["op"] == "put":
        return _put(http, op["id"], op["fields"], **headers).status_code
    return http.delete(f"/accounts/{op['id']}", headers=headers).status_code


@settings(max_examples=30, deadline=None)
@given(operations=st.lists(_OPERATIONS, max_size=15), as_batch=st.booleans())
def test_the_peer_behaves_as_a_simple_model(
    peer: PeerProcess, operations: list[dict[str, Any]], as_batch: bool
) -> None:
    model = Model()
    expected = [model.apply(op) for op in operations]
    with _client(peer) as http:
        assert http.post("/_reset").status_code == 204
        if as_batch:
            response = http.post("/accounts:batch", json={"operations": operations})
            assert response.status_code == 200, response.text
            statuses = [result["status"] for result in response.json()["results"]]
        else:
            statuses = [_send(http, op) for op in operations]
        assert statuses == expected

        items = http.get("/accounts", params={"include_deleted": "true"}).json()["items"]
        log = _log(http)
    assert {i["id"]: (i["version"], i["deleted"], i["fields"]) for i in items} == {
        record_id: (version, deleted, None if deleted else fields)
        for record_id, (version, deleted, fields) in model.records.items()
    }
    # change_seq: one per write, strictly increasing, each record at its last write
    assert [entry["seq"] for entry in log] == list(range(1, model.writes + 1))
    last_write = {entry["id"]: entry for entry in log}
    for item in items:
        assert item["change_seq"] == last_write[item["id"]]["seq"]
        assert item["version"] == last_write[item["id"]]["version"]
