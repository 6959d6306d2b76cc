"""Admission to the push API (`runtime/admission.py`), through HTTP on both stores: per-key
rate limits (in memory and in the real Redis) and the work queue's backlog bound answer
429 and 503 with Retry-After and store nothing; a configuration that cannot work is
refused with what to write instead. And `accord serve`'s in-process workers match what is
pushed."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from accord.errors import AccordError
from accord.govern import identity
from accord.intake import backpressure
from accord.runtime import admission
from accord.runtime.worker import MatchWorker, WorkerPool
from accord.settings import Settings
from accord.store import queue
from accord.store.engine import writing
from accord.store.tables import crosswalk, source_record
from accord.store.tables import work_item as work_item_table
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row
from tests.services import require

REDIS_URL = "redis://127.0.0.1:6379"


def _workspace(engine: Engine, project_dir: Path, **settings: Any) -> Workspace:
    return Workspace(project_dir, engine, Settings(**settings))


def _key(workspace: Workspace, system: str = "crm") -> str:
    with writing(workspace.engine) as conn:
        return identity.create_api_key(conn, system, created_by="test")


def _push(client: TestClient, key: str, *source_ids: str, system: str = "crm") -> Any:
    body = json.dumps({"records": [crm_row(s) for s in source_ids]})
    return client.post(
        f"/api/v1/systems/{system}/records",
        content=body,
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(source_record)).scalar_one())


@pytest.fixture
def redis_url() -> str:
    redis = pytest.importorskip("redis")
    require(
        "Redis", REDIS_URL, lambda: redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    )
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


def test_a_key_over_its_rate_limit_gets_429_with_retry_after_and_nothing_is_stored(
    engine: Engine, demo_project_dir: Path, storage: str
) -> None:
    workspace = _workspace(
        engine,
        demo_project_dir,
        rate_limit="3/minute",
        rate_limit_storage=storage,
        rate_limit_namespace=f"test-{uuid.uuid4().hex}",  # Redis keeps counts between runs
    )
    crm, erp = _key(workspace), _key(workspace, "erp")
    with TestClient(create_app(workspace)) as client:
        answers = [_push(client, crm, f"C{i}") for i in range(4)]
        other = client.post(
            "/api/v1/systems/erp/records",
            content=json.dumps({"records": []}),
            headers={"X-API-Key": erp, "Content-Type": "application/json"},
        )

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"] == "RateLimited"
    assert "3 per 1 minute" in refused.json()["message"]
    assert "hint" in refused.json()
    assert _stored(engine) == 3
    assert other.status_code != 429  # the count is per key


def test_past_the_backlog_bound_the_push_api_answers_503_until_workers_catch_up(
    engine: Engine, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backpressure, "READ_EVERY", 0.0)
    workspace = _workspace(engine, demo_project_dir, max_backlog=5, rate_limit="off")
    key = _key(workspace)
    with TestClient(create_app(workspace)) as client:
        first = _push(client, key, *[f"C{i}" for i in range(6)])  # under the bound when sent
        refused = _push(client, key, "C9")
        MatchWorker(engine, workspace.project).drain()
        after = _push(client, key, "C9")

    assert first.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"
    assert refused.json()["error"] == "Overloaded"
    assert "6 records are waiting" in refused.json()["message"]
    assert "accord worker" in refused.json()["hint"]
    assert after.status_code == 200
    assert _stored(engine) == 7


@pytest.mark.parametrize("value", ["lots", "3/fortnight", "-1/second"])
def test_a_rate_limit_that_cannot_be_read_is_refused_with_the_form_to_use(value: str) -> None:
    with pytest.raises(AccordError) as refused:
        admission.Admission(Settings(rate_limit=value))
    assert "ACCORD_RATE_LIMIT" in refused.value.message
    assert refused.value.hint is not None and "/second" in refused.value.hint


def test_an_unknown_rate_limit_storage_is_refused_with_what_to_use() -> None:
    with pytest.raises(AccordError) as refused:
        admission.Admission(Settings(rate_limit_storage="carrier-pigeon://loft"))
    assert "redis://" in (refused.value.hint or "")


def test_off_means_no_rate_limit() -> None:
    assert admission.rate_limits("off") == []
    assert [str(i) for i in admission.rate_limits("10/second;100/minute")] == [
        "10 per 1 second",
        "100 per 1 minute",
    ]


def test_workers_beside_the_app_match_what_is_pushed(
    engine: Engine, demo_project_dir: Path
) -> None:
    workspace = _workspace(engine, demo_project_dir, rate_limit="off")
    key = _key(workspace)
    with (
        WorkerPool(engine, workspace.project, 2) as pool,
        TestClient(create_app(workspace)) as client,
    ):
        assert _push(client, key, "P1", "P2").status_code == 200
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                matched = conn.execute(select(func.count()).select_from(crosswalk)).scalar_one()
                waiting = queue.backlog(conn)
            if matched == 2 and waiting == 0:
                break
            assert time.monotonic() < deadline, (matched, waiting)
            time.sleep(0.05)
    assert all(not t.is_alive() for t in pool.threads)
    assert sum(w.report.matched for w in pool.workers) >= 2


def test_two_keys_never_share_a_count(storage: str) -> None:
    limits = admission.Admission(Settings(rate_limit="1/minute", rate_limit_storage=storage))
    first, second = f"k-{uuid.uuid4().hex}", f"k-{uuid.uuid4().hex}"
    limits.check_rate(first)
    limits.check_rate(second)
    with pytest.raises(admission.RateLimited):
        limits.check_rate(first)


def test_a_webhook_past_the_backlog_bound_gets_503_and_is_stored_once_retried(
    engine: Engine, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.intake.test_webhooks import SECRET, _configure, _deliver  # noqa: PLC0415

    monkeypatch.setattr(backpressure, "READ_EVERY", 0.0)
    monkeypatch.setenv("ACCORD_TEST_CRM_SECRET", SECRET)
    _configure(demo_project_dir)
    workspace = _workspace(engine, demo_project_dir, max_backlog=1)
    with writing(engine) as conn:
        queue.enqueue(conn, "customer", "crm", ["waiting"])
    body = json.dumps(crm_row("W1")).encode()
    with TestClient(create_app(workspace)) as client:
        refused = _deliver(client, body)
        with writing(engine) as conn:
            conn.execute(work_item_table.delete())
        accepted = _deliver(client, body)

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "30"
    assert accepted.status_code == 200, accepted.text
    assert _stored(engine) == 1
