"""Users and roles, administered: list, create, change a role, deactivate and reactivate,
reset a lost second factor. Each needs `users:manage`, and the last active administrator
can be neither demoted nor deactivated, so someone can always administer."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from accord.errors import Conflict, InputRejected, NotFound
from accord.govern import identity
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Permission, Role, require
from accord.store.tables import app_user, user_mfa

# the roles a person may hold (systems and monitors sign in with API keys)
PERSON_ROLES = (Role.ADMIN, Role.STEWARD, Role.OPERATOR, Role.VIEWER)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    mfa_enrolled_at: datetime | None  # None: no second factor


def list_users(conn: Connection, actor: Actor) -> list[User]:
    """Every user, by name."""
    require(actor, Permission.USERS_MANAGE)
    rows = conn.execute(
        select(app_user, user_mfa.c.enrolled_at)
        .outerjoin(user_mfa, user_mfa.c.user_id == app_user.c.id)
        .order_by(app_user.c.username)
    )
    return [
        User(
            row.id,
            row.username,
            Role(row.role),
            row.active,
            row.created_at,
            row.last_login_at,
            row.enrolled_at,
        )
        for row in rows
    ]


def create(conn: Connection, actor: Actor, username: str, password: str, role: Role) -> int:
    """A new, active user; returns their id."""
    require(actor, Permission.USERS_MANAGE)
    check_person_role(role)
    return identity.create_user(conn, username, password, role, created_by=actor.label)


def change_role(
    conn: Connection,
    actor: Actor,
    username: str,
    role: Role,
    *,
    mfa_roles: Collection[Role] = frozenset(),
) -> None:
    """Give `username` another role, from their next request on (sessions read the role
    each time). Someone moved to a role that requires a second factor they have not set
    up is signed out: they set one up at their next sign-in."""
    require(actor, Permission.USERS_MANAGE)
    check_person_role(role)
    user = _user(conn, username)
    if Role(user.role) is role:
        return
    if user.role == Role.ADMIN and user.active:
        _keep_an_admin(conn, user, "take the admin role from")
    conn.execute(update(app_user).where(app_user.c.id == user.id).values(role=str(role)))
    signed_out = role in mfa_roles and identity.mfa_status(conn, user.id).enrolled_at is None
    if signed_out:
        identity.end_sessions(conn, user.id)
    details = {"from": user.role, "to": str(role), "signed_out": signed_out}
    record(
        conn, actor.label, [AuditEvent(AuditAction.USER_ROLE_CHANGED, "user", username, details)]
    )


def set_active(conn: Connection, actor: Actor, username: str, *, active: bool) -> None:
    """Deactivate (no sign-in; every session ends at once) or reactivate `username`."""
    require(actor, Permission.USERS_MANAGE)
    user = _user(conn, username)
    if user.active == active:
        return
    if not active:
        if user.role == Role.ADMIN:
            _keep_an_admin(conn, user, "deactivate")
        identity.end_sessions(conn, user.id)
    conn.execute(update(app_user).where(app_user.c.id == user.id).values(active=active))
    action = AuditAction.USER_REACTIVATED if active else AuditAction.USER_DEACTIVATED
    record(conn, actor.label, [AuditEvent(action, "user", username)])


def reset_mfa(conn: Connection, actor: Actor, username: str) -> None:
    """Forget `username`'s second factor and recovery codes (a lost phone) and end their
    sessions; they sign in with their password and, if their role requires one, set up
    a new factor at once."""
    require(actor, Permission.USERS_MANAGE)
    user = _user(conn, username)
    if identity.mfa_status(conn, user.id).enrolled_at is None:
        raise Conflict(f"{username} has no second factor to reset")
    identity.remove_factor(conn, user.id)
    identity.end_sessions(conn, user.id)
    record(conn, actor.label, [AuditEvent(AuditAction.USER_MFA_RESET, "user", username)])


def check_person_role(role: Role) -> None:
    """InputRejected unless `role` is one a person may hold."""
    if role not in PERSON_ROLES:
        raise InputRejected(
            f"a person holds one of the roles {', '.join(PERSON_ROLES)}, not {role}",
            hint="systems and monitors use API keys: `accord keys create`",
        )


def _user(conn: Connection, username: str) -> Row[Any]:
    row = conn.execute(select(app_user).where(app_user.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user named {username!r}")
    return row


def _keep_an_admin(conn: Connection, user: Row[Any], doing: str) -> None:
    """Refuse to leave no active administrator. The admins' rows are locked (on
    PostgreSQL; SQLite's writer holds the database) so two such changes at once cannot
    each count the other's admin."""
    admins = conn.execute(
        select(app_user.c.id)
        .where(app_user.c.role == str(Role.ADMIN), app_user.c.active.is_(True))
        .with_for_update()
    ).all()
    if len(admins) <= 1:
        raise Conflict(
            f"cannot {doing} {user.username}: they are the last active administrator",
            hint="make someone else an administrator first",
        )
