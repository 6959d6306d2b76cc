"""The JSON API against its own OpenAPI description: schemathesis generates requests from
`/openapi.json` (valid and invalid ones) for every operation, sent as an admin, and no
answer may be a server error or break the description."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Role
from accord.intake.load import load_file
from accord.store.engine import writing
from accord.web.app import create_app
from accord.workspace import Workspace
from tests.factories import crm_row, write_csv

PASSWORD = "a long enough password"
EXAMPLES = 30  # per operation, on each store
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(workspace: Workspace, tmp_path: Any) -> Any:
    rows = [crm_row("C1"), crm_row("C2", FirstName="Zoë", LastName="O'Brien", Email="z@x.org")]
    load_file(
        workspace.engine,
        workspace.project,
        "crm",
        write_csv(tmp_path / "crm.csv", rows),
        actor="test",
    )
    resolve(workspace.engine, workspace.project, actor="test")
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "admin", PASSWORD, Role.ADMIN, created_by="test")
    _, session = identity.sign_in(workspace.engine, "admin", PASSWORD)
    headers = {"cookie": f"accord_session={session.token}"}
    loaded = schemathesis.openapi.from_asgi("/openapi.json", create_app(workspace), headers=headers)
    # signing out would end the session the other operations are sent with
    return loaded.exclude(method="DELETE", path="/api/v1/session"), headers


def test_no_server_errors_and_answers_as_described(api_schema: Any) -> None:
    loaded, headers = api_schema
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
