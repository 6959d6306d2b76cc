"""`accord users`: list people, change a role, deactivate, reactivate, reset a lost
second factor (the way back in for an administrator who lost phone and recovery codes).
`accord users add` is in main.py."""

from __future__ import annotations

from typing import Annotated

import typer

from accord.cli.output import ProjectDir, console, open_workspace, reports_errors, table
from accord.govern import users
from accord.govern.permissions import Role, cli_actor
from accord.store.engine import writing

Username = Annotated[str, typer.Argument(help="the user's name")]


@reports_errors
def list_users(directory: ProjectDir) -> None:
    """Every user: role, state, second factor, last sign-in."""
    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        listed = users.list_users(conn, cli_actor())
    rows = [
        [
            user.username,
            str(user.role),
            "active" if user.active else "deactivated",
            user.mfa_enrolled_at or "off",
            user.last_login_at or "never",
        ]
        for user in listed
    ]
    columns = ["user", "role", "state", "two-step since", "last sign-in"]
    console.print(table("users", columns, rows))


@reports_errors
def set_role(
    directory: ProjectDir,
    username: Username,
    role: Annotated[Role, typer.Argument(help="admin, steward, operator or viewer")],
) -> None:
    """Give a user another role, from their next request on."""
    workspace = open_workspace(directory)
    roles = workspace.project.config.security.mfa_roles
    with writing(workspace.engine) as conn:
        users.change_role(conn, cli_actor(), username, role, mfa_roles=roles)
    console.print(f"{username} is now {role}")


@reports_errors
def deactivate(directory: ProjectDir, username: Username) -> None:
    """Stop a user signing in; their sessions end at once."""
    workspace = open_workspace(directory)
    with writing(workspace.engine) as conn:
        users.set_active(conn, cli_actor(), username, active=False)
    console.print(f"deactivated {username}")


@reports_errors
def reactivate(directory: ProjectDir, username: Username) -> None:
    """Let a deactivated user sign in again."""
    workspace = open_workspace(directory)
    with writing(workspace.engine) as conn:
        users.set_active(conn, cli_actor(), username, active=True)
    console.print(f"reactivated {username}")


@reports_errors
def reset_mfa(directory: ProjectDir, username: Username) -> None:
    """Forget a user's second factor (a lost phone); they set up a new one at their next
    sign-in if their role requires one."""
    workspace = open_workspace(directory)
    with writing(workspace.engine) as conn:
        users.reset_mfa(conn, cli_actor(), username)
    console.print(f"reset the second factor of {username}; their sessions have ended")
