"""Access through the HTTP layer: every route declares the permission it needs, and each
role is refused exactly the routes whose permission it lacks, on pages and API alike."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from accord.govern import identity
from accord.govern.permissions import ROLE_PERMISSIONS, Permission, Role
from accord.store.engine import writing
from accord.web.app import create_app
from accord.web.auth import CSRF_COOKIE, SESSION_COOKIE, Needs, current_actor
from accord.workspace import Workspace

PASSWORD = "a long enough password"
CSRF = {"x-csrf-token": "a-token-of-this-browser"}
# open to anyone: liveness, signing in, and webhooks (authenticated by their signature)
OPEN = {
    ("GET", "/health"),
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/login/code"),
    ("POST", "/login/code"),
    ("GET", "/login/enrol"),
    ("POST", "/login/enrol"),
    ("POST", "/api/v1/session"),
    ("POST", "/api/v1/systems/{system}/webhook"),
}
# any signed-in actor: who am I, signing out, the API's description
SIGNED_IN = {
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("POST", "/logout"),
    ("GET", "/openapi.json"),
}
# beyond its permission, only the system's own key: a person never pushes as a system
OWN_SYSTEM_ONLY = {("POST", "/api/v1/systems/{system}/records")}
# values for path parameters: enough to reach the route, not to find anything
PATH_VALUES = {"golden_id": "C0000001", "system": "crm", "source_id": "C1"}


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _declared(route: APIRoute) -> Permission | None:
    needs = [call for call in _calls(route.dependant) if isinstance(call, Needs)]
    assert len(needs) <= 1, f"{route.path} declares more than one permission"
    return needs[0].permission if needs else None


def _api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route of the app, through included routers (which FastAPI keeps as
    routers of their own; none is included with a prefix of its own)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _guarded(workspace: Workspace) -> list[tuple[str, str, Permission]]:
    found = [
        (method, route.path, route)
        for route in _api_routes(create_app(workspace).routes)
        for method in route.methods
    ]
    rows = []
    for method, path, route in found:
        permission = _declared(route)
        if (method, path) in OPEN:
            assert permission is None, f"{method} {path} is open but declares {permission}"
            assert current_actor not in set(_calls(route.dependant)), f"{path} is not open"
            continue
        if (method, path) in SIGNED_IN:
            assert current_actor in set(_calls(route.dependant)), f"{path} needs no sign-in"
            continue
        assert permission is not None, f"{method} {path} declares no permission"
        rows.append((method, path, permission))
    return rows


def test_every_route_is_open_signed_in_or_declares_one_permission(workspace: Workspace) -> None:
    guarded = _guarded(workspace)
    assert len(guarded) >= 20  # pages and API both


@pytest.fixture
def sessions(workspace: Workspace) -> dict[str, dict[str, str]]:
    """Request headers or cookies for an actor of each role."""
    found: dict[str, dict[str, str]] = {}
    with writing(workspace.engine) as conn:
        for role in (Role.ADMIN, Role.STEWARD, Role.OPERATOR, Role.VIEWER):
            identity.create_user(conn, str(role), PASSWORD, role, created_by="test")
            found[str(role)] = {}
        found["system"] = {"x-api-key": identity.create_api_key(conn, "crm", created_by="test")}
        monitor = identity.create_api_key(conn, "prometheus", created_by="test", role=Role.MONITOR)
        found["monitor"] = {"x-api-key": monitor}
    for role in (Role.ADMIN, Role.STEWARD, Role.OPERATOR, Role.VIEWER):
        _, session = identity.sign_in(workspace.engine, str(role), PASSWORD)
        cookies = f"{SESSION_COOKIE}={session.token}; {CSRF_COOKIE}={CSRF['x-csrf-token']}"
        found[str(role)] = {"cookie": cookies}
    return found


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)


def test_each_role_is_refused_exactly_what_its_permissions_leave_out(
    workspace: Workspace, sessions: dict[str, dict[str, str]]
) -> None:
    roles = {
        "admin": Role.ADMIN,
        "steward": Role.STEWARD,
        "operator": Role.OPERATOR,
        "viewer": Role.VIEWER,
        "system": Role.SYSTEM,
        "monitor": Role.MONITOR,
    }
    wrong: list[str] = []
    with TestClient(create_app(workspace)) as client:
        for method, path, permission in _guarded(workspace):
            for name, role in roles.items():
                response = client.request(
                    method,
                    _url(path),
                    # a valid CSRF token, so that only the permission can refuse a form
                    headers=sessions[name] | CSRF | {"accept": "application/json"},
                    follow_redirects=False,
                )
                may = permission in ROLE_PERMISSIONS[role]
                if (method, path) in OWN_SYSTEM_ONLY:
                    may = name == "system"  # the key of crm, the system in the path
                refused = response.status_code == 403
                if response.status_code == 401 or refused == may:
                    wrong.append(f"{name} {method} {path}: {response.status_code}")
    assert not wrong, "\n".join(wrong)
