"""`accord users`: roles, deactivation and a lost second factor from the command line."""

from __future__ import annotations

from pathlib import Path

from accord.govern import identity, mfa
from accord.govern.permissions import Role
from accord.store.engine import writing
from accord.store.types import utcnow
from accord.workspace import open_workspace
from tests.cli.helpers import run

PASSWORD = "a long enough password"


def test_users_from_the_command_line(demo_project_dir: Path) -> None:
    workspace = open_workspace(demo_project_dir)
    with writing(workspace.engine) as conn:
        identity.create_user(conn, "root", PASSWORD, Role.ADMIN, created_by="test")
        identity.create_user(conn, "ann", PASSWORD, Role.VIEWER, created_by="test")
    actor, _ = identity.sign_in(workspace.engine, "ann", PASSWORD)
    with writing(workspace.engine) as conn:
        pending = identity.start_enrolment(conn, actor)
    assert pending.secret is not None
    code = mfa.code_at(pending.secret, utcnow())
    identity.confirm_enrolment(workspace.engine, actor, pending.token, code)
    workspace.engine.dispose()

    listed = run("users", "list", demo_project_dir)
    assert "root" in listed and "ann" in listed and "never" in listed
    assert "ann is now steward" in run("users", "set-role", demo_project_dir, "ann", "steward")
    refused = run("users", "set-role", demo_project_dir, "root", "viewer", code=1)
    assert "last active administrator" in refused
    assert "no user named" in run("users", "deactivate", demo_project_dir, "nobody", code=1)
    run("users", "deactivate", demo_project_dir, "ann")
    assert "deactivated" in run("users", "list", demo_project_dir)
    run("users", "reactivate", demo_project_dir, "ann")
    assert "reset the second factor" in run("users", "reset-mfa", demo_project_dir, "ann")
    assert "no second factor" in run("users", "reset-mfa", demo_project_dir, "ann", code=1)
