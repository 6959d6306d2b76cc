"""Signed webhooks: the signature check alone (`intake.webhooks.verify`, pure, any body,
secret and time), and the route (`POST /api/v1/systems/{system}/webhook`) through HTTP
on both stores: stored through the push path, replays answered as duplicates, every
refusal with its reason and nothing stored."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from accord.errors import NotFound, ProjectInvalid
from accord.intake import webhooks
from accord.intake.webhooks import SignatureRejected, sign, signature_header, verify
from accord.store.tables import load, quarantine, source_record, webhook_delivery
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row

SECRET = "whsec_current_0123456789"
OLD_SECRET = "whsec_previous_9876543210"
NOW = 1_750_000_000

secrets_ = st.text(min_size=1, max_size=40)
bodies = st.binary(max_size=300)
times = st.integers(min_value=0, max_value=4_000_000_000)


@settings(max_examples=200)
@given(bodies, secrets_, times)
def test_a_signed_delivery_verifies(body: bytes, secret: str, at: int) -> None:
    header = signature_header([secret], at, body)
    assert verify(body, str(at), header, secrets=[secret], tolerance=300, now=at + 299) == at


@settings(max_examples=200)
@given(bodies, secrets_, times, st.data())
def test_any_single_byte_changed_fails(body: bytes, secret: str, at: int, data: Any) -> None:
    header = signature_header([secret], at, body)
    if body:
        position = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        changed = bytearray(body)
        changed[position] ^= flip
        with pytest.raises(SignatureRejected, match="bad signature"):
            verify(bytes(changed), str(at), header, secrets=[secret], tolerance=300, now=at)
    # the timestamp is signed too
    with pytest.raises(SignatureRejected, match="bad signature"):
        verify(body, str(at + 1), header, secrets=[secret], tolerance=300, now=at)
    # and a signature with one hex digit changed is another signature
    digest = header[3:]
    position = data.draw(st.integers(0, len(digest) - 1))
    other = "0" if digest[position] != "0" else "1"
    forged = "v1=" + digest[:position] + other + digest[position + 1 :]
    with pytest.raises(SignatureRejected, match="bad signature"):
        verify(body, str(at), forged, secrets=[secret], tolerance=300, now=at)


@settings(max_examples=200)
@given(bodies, secrets_, times, st.integers(301, 10**6), st.booleans())
def test_outside_the_tolerance_fails_as_expired(
    body: bytes, secret: str, at: int, skew: int, future: bool
) -> None:
    header = signature_header([secret], at, body)
    now = at - skew if future else at + skew
    with pytest.raises(SignatureRejected, match="signature expired"):
        verify(body, str(at), header, secrets=[secret], tolerance=300, now=now)


@settings(max_examples=200)
@given(st.text(max_size=80), st.text(max_size=300))
def test_any_header_is_verified_or_refused_with_a_reason(timestamp: str, header: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        verify(b"{}", timestamp, header, secrets=[SECRET], tolerance=300, now=NOW)
    reasons = {"missing header", "bad timestamp", "signature expired", "bad signature"}
    assert caught.value.reason in reasons


def test_rotation_accepts_either_secret_and_several_values() -> None:
    body = b'{"Id": "C1"}'
    old_only = signature_header([OLD_SECRET], NOW, body)
    both = signature_header([OLD_SECRET, SECRET], NOW, body)
    for header in (old_only, both, f"v0=abc, {both}", both.upper().replace("V1=", "v1=")):
        verify(body, str(NOW), header, secrets=[SECRET, OLD_SECRET], tolerance=300, now=NOW)
    with pytest.raises(SignatureRejected, match="bad signature"):
        verify(body, str(NOW), old_only, secrets=[SECRET], tolerance=300, now=NOW)
    with pytest.raises(SignatureRejected, match="1 to 8"):
        verify(body, str(NOW), ",".join([old_only] * 9), secrets=[SECRET], tolerance=300, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, "v1=00", "missing header"),
        (str(NOW), None, "missing header"),
        ("", "", "missing header"),
        ("17.5", "v1=00", "bad timestamp"),
        ("-1", "v1=00", "bad timestamp"),
        ("１２３", "v1=00", "bad timestamp"),  # full-width digits  # noqa: RUF001
        (str(NOW), "sha256=00", "bad signature"),
        (str(NOW), "v1=" + "0" * 2000, "bad signature"),
    ],
)
def test_malformed_headers_say_what_is_wrong(
    timestamp: str | None, signature: str | None, reason: str
) -> None:
    with pytest.raises(SignatureRejected) as caught:
        verify(b"{}", timestamp, signature, secrets=[SECRET], tolerance=300, now=NOW)
    assert caught.value.reason == reason and caught.value.hint


# --- the route, through HTTP, on both stores -------------------------------------------


def _configure(project_dir: Path) -> None:
    config = project_dir / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    block = (
        "    intake:\n      webhook:\n        secret_env: ACCORD_TEST_CRM_SECRET\n"
        "        previous_secret_env: ACCORD_TEST_CRM_OLD_SECRET\n        tolerance: 5m\n"
    )
    config.write_text(text.replace("  crm:\n", "  crm:\n" + block, 1), encoding="utf-8")


@pytest.fixture
def client(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    _configure(workspace.root)
    monkeypatch.setenv("ACCORD_TEST_CRM_SECRET", SECRET)
    monkeypatch.delenv("ACCORD_TEST_CRM_OLD_SECRET", raising=False)
    with TestClient(create_app(workspace)) as test_client:
        yield test_client


def _deliver(
    client: TestClient,
    body: bytes,
    *,
    secret: str = SECRET,
    at: int | None = None,
    system: str = "crm",
    headers: dict[str, str] | None = None,
) -> Any:
    at = int(time.time()) if at is None else at
    sent = {
        "Content-Type": "application/json",
        "Accord-Timestamp": str(at),
        "Accord-Signature": f"v1={sign(secret, at, body)}",
    } | (headers or {})
    return client.post(f"/api/v1/systems/{system}/webhook", content=body, headers=sent)


def _count(workspace: Workspace, table: Any) -> int:
    with workspace.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_signed_record_is_stored_and_a_replay_is_a_duplicate(
    client: TestClient, workspace: Workspace
) -> None:
    body = json.dumps(crm_row("C1")).encode()
    at = int(time.time())
    first = _deliver(client, body, at=at)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["duplicate"] is False and answer["counts"]["accepted"] == 1
    assert answer["records"][0]["record"] == "record"
    again = _deliver(client, body, at=at)
    assert again.status_code == 200 and again.json() == {
        "load_id": answer["load_id"],
        "duplicate": True,
    }
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(workspace, source_record) == 1 and _count(workspace, load) == 1
    with workspace.engine.connect() as conn:
        channel = conn.execute(select(load.c.channel)).scalar_one()
    assert channel == "webhook"
    # the same change, signed anew later, is a new delivery: its record is a duplicate
    later = _deliver(client, body, at=at + 1).json()
    assert later["duplicate"] is False and later["counts"]["duplicate"] == 1


def test_a_batch_with_a_bad_record_stores_the_good_ones(
    client: TestClient, workspace: Workspace
) -> None:
    body = json.dumps({"records": [crm_row("C1"), crm_row("C2", Id=""), "x"]}).encode()
    response = _deliver(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["counts"] == {"accepted": 1, "duplicate": 0, "rejected": 2}
    assert _count(workspace, quarantine) == 2


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"secret": "someone else's secret"}, 401, "bad signature"),
        ({"at": 1_000_000_000}, 401, "signature expired"),
        ({"headers": {"Accord-Signature": ""}}, 401, "missing header"),
        ({"headers": {"X-API-Key": "not how a webhook signs in"}}, 200, None),
        ({"system": "erp"}, 404, None),  # erp has no webhook block
        ({"system": "nope"}, 404, None),
    ],
)
def test_refusals_say_why_and_store_nothing(
    client: TestClient,
    workspace: Workspace,
    change: dict[str, Any],
    status: int,
    reason: str | None,
) -> None:
    response = _deliver(client, json.dumps(crm_row("C1")).encode(), **change)
    assert response.status_code == status, response.text
    if reason is not None:
        assert response.json()["message"].startswith(reason)
        assert response.json()["hint"]
    if status != 200:
        assert _count(workspace, source_record) == 0


def test_bad_bodies_are_refused_after_the_signature(
    client: TestClient, workspace: Workspace
) -> None:
    for body in (b"not json", b"[1, 2]", b'{"records": []}', b"\xff\xfe", b'{"a": NaN}'):
        response = _deliver(client, body)
        assert response.status_code == 422, (body, response.text)
    oversized = b" " * (10 * 1_048_576 + 1)
    assert _deliver(client, oversized).status_code == 413
    assert _count(workspace, source_record) == 0 and _count(workspace, webhook_delivery) == 0


def test_a_secret_that_is_not_set_is_a_server_problem_not_a_leak(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACCORD_TEST_CRM_SECRET")
    response = _deliver(client, b"{}")
    assert response.status_code == 500
    assert "ACCORD_TEST_CRM_SECRET" not in response.text


def test_the_previous_secret_is_accepted_during_a_rotation(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(crm_row("C1")).encode()
    assert _deliver(client, body, secret=OLD_SECRET).status_code == 401
    monkeypatch.setenv("ACCORD_TEST_CRM_OLD_SECRET", OLD_SECRET)
    assert _deliver(client, body, secret=OLD_SECRET).status_code == 200


def test_racing_twins_store_one_delivery(client: TestClient, workspace: Workspace) -> None:
    body = json.dumps({"records": [crm_row(f"C{i}") for i in range(100)]}).encode()
    at = int(time.time())
    answers: list[Any] = []

    def send() -> None:
        answers.append(_deliver(client, body, at=at))

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 200]
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True]
    assert _count(workspace, source_record) == 100 and _count(workspace, load) == 1


def test_old_deliveries_are_pruned(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(workspace.root)
    environ = {"ACCORD_TEST_CRM_SECRET": SECRET}
    body = json.dumps(crm_row("C1")).encode()

    def deliver(at: int, now: float) -> webhooks.WebhookAnswer:
        return webhooks.receive(
            workspace.engine,
            workspace.project,
            "crm",
            body,
            timestamp=str(at),
            signature=f"v1={sign(SECRET, at, body)}",
            content_encoding=None,
            environ=environ,
            now=now,
        )

    at = int(time.time())
    deliver(at, at)
    assert _count(workspace, webhook_delivery) == 1
    later = at + 3600
    from datetime import UTC, datetime  # noqa: PLC0415

    monkeypatch.setattr(webhooks, "utcnow", lambda: datetime.fromtimestamp(later, UTC))
    assert deliver(later, later).duplicate is False
    assert _count(workspace, webhook_delivery) == 1  # the first one, an hour old, is gone


def test_no_webhook_block_or_secret(workspace: Workspace) -> None:
    with pytest.raises(NotFound, match="no webhook"):
        webhooks.settings(workspace.project, "crm")
    _configure(workspace.root)
    workspace._project = None
    with pytest.raises(ProjectInvalid):
        webhooks.secrets_of(webhooks.settings(workspace.project, "crm"), {}, "crm")
