"""`GET /metrics` through the HTTP layer: who may scrape it, and what a scrape holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.settings import Settings
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row, write_csv

PASSWORD = "a long enough password"
BILLING = """\
    deliver:
      http: {url: "http://billing.invalid:8101", resource: accounts}
      fields: {given_name: given_name, family_name: family_name}
    health: {min_completeness: 0.5}
"""
CRM = """\
    health: {max_error_rate: 0.1, in: {max_backlog: 0, max_golden_latency: 1h}}
"""


@pytest.fixture
def keys(workspace: Workspace, tmp_path: Path) -> dict[str, str]:
    """A store with 2 CRM records (one quarantined row), resolved, then 1 more waiting;
    users of each role, a system key and a monitoring key."""
    config = workspace.root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("    authority: [email]\n", "    authority: [email]\n" + BILLING, 1)
    text = text.replace("    default_region: GB\n", "    default_region: GB\n" + CRM, 1)
    config.write_text(text, encoding="utf-8")
    rows = [
        crm_row("C1"),
        crm_row("C2", FirstName="Bob", LastName="Jones", Email="bob@x.org", Phone=""),
        crm_row("C3", BirthDate="1985-13-45"),
    ]
    project = Workspace(workspace.root, workspace.engine, Settings()).project
    load_file(workspace.engine, project, "crm", write_csv(tmp_path / "a.csv", rows), actor="t")
    resolve(workspace.engine, project, actor="test")
    more = write_csv(tmp_path / "b.csv", [crm_row("C4", FirstName="Cleo", Email="c@x.org")])
    load_file(workspace.engine, project, "crm", more, actor="t")
    with writing(workspace.engine) as conn:
        for role in (Role.OPERATOR, Role.VIEWER, Role.STEWARD):
            identity.create_user(conn, str(role), PASSWORD, role, created_by="test")
        return {
            "system": identity.create_api_key(conn, "crm", created_by="test"),
            "monitor": identity.create_api_key(
                conn, "prometheus", created_by="test", role=Role.MONITOR
            ),
        }


@pytest.fixture
def client(workspace: Workspace, keys: dict[str, str]) -> Iterator[TestClient]:
    fresh = Workspace(workspace.root, workspace.engine, Settings())  # reads accord.yaml anew
    with TestClient(create_app(fresh)) as test_client:
        yield test_client


def _sign_in(client: TestClient, username: str) -> None:
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_needs_authentication(client: TestClient) -> None:
    response = client.get("/metrics", follow_redirects=False)

    assert response.status_code == 401  # a scraper gets an answer, not the sign-in page
    assert response.json()["error"] == "NotAuthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    bad = client.get("/metrics", headers={"Authorization": "Bearer acc_nobody_x"})
    assert bad.status_code == 401


@pytest.mark.parametrize("username", ["viewer", "steward"])
def test_roles_without_health_read_are_refused(client: TestClient, username: str) -> None:
    _sign_in(client, username)

    response = client.get("/metrics")

    assert response.status_code == 403
    assert "health:read" in response.json()["message"]


def test_a_systems_key_is_refused(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {keys['system']}"})

    assert response.status_code == 403
    assert response.json()["message"] == "system:crm (system) may not health:read"


def test_an_operator_reads_the_figures_and_alerts(client: TestClient) -> None:
    _sign_in(client, "operator")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = _samples(response.text)
    assert _value(samples, "accord_intake_received_records", system="crm", window="1h") == 4
    assert _value(samples, "accord_intake_received_records", system="crm", window="1d") == 4
    assert _value(samples, "accord_intake_quarantined_records", system="crm", window="1h") == 1
    assert _value(samples, "accord_intake_error_ratio", system="crm", window="1h") == 0.25
    assert _value(samples, "accord_intake_backlog", system="crm") == 1
    assert _value(samples, "accord_intake_failed", system="crm") == 0
    assert _value(samples, "accord_intake_oldest_waiting_seconds", system="erp") == 0
    assert _value(samples, "accord_intake_channel_failures", system="billing", channel="drop") == 0
    # nothing received from erp: no error ratio rather than a made-up one
    assert ("accord_intake_error_ratio", frozenset({("system", "erp"), ("window", "1h")})) not in (
        samples
    )
    # the resolve's two new customers wait for billing, not yet planned
    assert _value(samples, "accord_sync_waiting", target="billing") == 2
    assert _value(samples, "accord_sync_sent", target="billing", window="1h") == 0
    assert _value(samples, "accord_sync_dead", target="billing", window="1h") == 0
    assert _value(samples, "accord_sync_dead_letters", target="billing") == 0
    assert _value(samples, "accord_sync_completeness_ratio", target="billing") == 0
    assert not any(name == "accord_sync_latency_seconds" for name, _ in samples)  # none sent
    # the resolve matched C1 and C2 from the queue: their wait from received to golden
    assert _value(samples, "accord_intake_matched_records", system="crm", window="1h") == 2
    waits = [
        _value(samples, "accord_intake_latency_seconds", system="crm", quantile=q)
        for q in ("0.5", "0.95", "0.99")
    ]
    assert 0 <= waits[0] <= waits[1] <= waits[2] < 60
    assert _value(samples, "accord_intake_matched_records", system="erp", window="1h") == 0
    assert not any(  # nothing of erp's matched: no quantiles rather than made-up ones
        name == "accord_intake_latency_seconds" and ("system", "erp") in labels
        for name, labels in samples
    )
    alerts = {
        tuple(sorted(labels)): value
        for (name, labels), value in samples.items()
        if name == "accord_alert"
    }
    assert alerts == {
        (("check", "error_rate"), ("direction", "in"), ("system", "crm")): 1,
        (("check", "backlog"), ("direction", "in"), ("system", "crm")): 1,
        (("check", "golden_latency"), ("direction", "in"), ("system", "crm")): 0,
        (("check", "backlog"), ("direction", "out"), ("system", "billing")): 0,
        (("check", "completeness"), ("direction", "out"), ("system", "billing")): 1,
    }


def test_prometheus_scrapes_with_a_monitoring_key(client: TestClient, keys: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {keys['monitor']}"}

    plain = client.get("/metrics", headers=headers)
    openmetrics = client.get(
        "/metrics",
        headers=headers | {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
    )

    assert plain.status_code == 200
    assert _value(_samples(plain.text), "accord_intake_backlog", system="crm") == 1
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(openmetrics.text)}
    assert families["accord_sync_waiting"].samples[0].value == 2
    assert families["accord_alert"].type == "gauge"
