"""People and systems: argon2 passwords, sessions, and hashed per-system API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pwdlib import PasswordHash
from sqlalchemy import Connection, delete, select, update

from accord.errors import Conflict, InputRejected, NotAuthenticated
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Role
from accord.store.tables import api_key, app_user, user_session
from accord.store.types import utcnow

_passwords = PasswordHash.recommended()  # argon2id
# Verified against when the user does not exist, so both paths cost the same time.
_DUMMY_HASH = _passwords.hash("accord-timing-equalizer")
MIN_PASSWORD_CHARS = 12
SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)
# Reads should not write: a session's last use is recorded at most once a minute.
SESSION_TOUCH_INTERVAL = timedelta(minutes=1)
KEY_PREFIX = "acc"


@dataclass(frozen=True)
class Session:
    token: str  # given to the client once; only its hash is stored
    expires_at: datetime


def _digest(secret: str) -> str:
    # API keys and session tokens are 256-bit random values, so a fast hash suffices:
    # there is nothing to brute-force, and lookups stay cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(
    conn: Connection, username: str, password: str, role: Role, *, created_by: str
) -> int:
    username = username.strip()
    if not username or len(username) > 150:
        raise InputRejected("a username has 1 to 150 characters")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputRejected(f"a password has at least {MIN_PASSWORD_CHARS} characters")
    if conn.execute(select(app_user.c.id).where(app_user.c.username == username)).first():
        raise Conflict(f"user {username!r} exists already")
    user_id = conn.execute(
        app_user.insert().returning(app_user.c.id),
        {
            "username": username,
            "password_hash": _passwords.hash(password),
            "role": str(role),
            "active": True,
            "created_at": utcnow(),
        },
    ).scalar_one()
    record(
        conn, created_by, [AuditEvent(AuditAction.USER_CREATED, "user", username, {"role": role})]
    )
    return int(user_id)


def sign_in(conn: Connection, username: str, password: str) -> tuple[Actor, Session]:
    """Check a password and open a session; raises NotAuthenticated, saying nothing of why."""
    row = conn.execute(select(app_user).where(app_user.c.username == username)).first()
    valid = _passwords.verify(password, row.password_hash if row else _DUMMY_HASH)
    if row is None or not valid or not row.active:
        record(
            conn,
            "anonymous",
            [AuditEvent(AuditAction.USER_SIGN_IN_FAILED, "user", username[:150])],
        )
        raise NotAuthenticated("wrong username or password")
    now = utcnow()
    token = secrets.token_urlsafe(32)
    session = Session(token, now + SESSION_ABSOLUTE)
    conn.execute(
        user_session.insert(),
        {
            "token_hash": _digest(token),
            "user_id": row.id,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": session.expires_at,
        },
    )
    conn.execute(update(app_user).where(app_user.c.id == row.id).values(last_login_at=now))
    record(conn, f"user:{username}", [AuditEvent(AuditAction.USER_SIGNED_IN, "user", username)])
    return Actor("user", row.username, Role(row.role), row.id), session


@dataclass(frozen=True)
class SessionCheck:
    actor: Actor
    needs_touch: bool  # last use is old enough that sliding the session is worth a write


def check_session(conn: Connection, token: str) -> SessionCheck:
    """The user behind a session token, read only; raises NotAuthenticated."""
    now = utcnow()
    row = conn.execute(
        select(user_session, app_user.c.username, app_user.c.role, app_user.c.active)
        .join(app_user, app_user.c.id == user_session.c.user_id)
        .where(user_session.c.token_hash == _digest(token))
    ).first()
    if (
        row is None
        or not row.active
        or row.expires_at <= now
        or (now - row.last_seen_at > SESSION_IDLE)
    ):
        raise NotAuthenticated("the session has ended; sign in again")
    actor = Actor("user", row.username, Role(row.role), row.user_id)
    return SessionCheck(actor, now - row.last_seen_at > SESSION_TOUCH_INTERVAL)


def touch_session(conn: Connection, token: str) -> None:
    """Slide the idle timeout forward (within the absolute limit)."""
    conn.execute(
        update(user_session)
        .where(user_session.c.token_hash == _digest(token))
        .values(last_seen_at=utcnow())
    )


def actor_for_session(conn: Connection, token: str) -> Actor:
    """Check a session and slide it when due, in one write transaction."""
    check = check_session(conn, token)
    if check.needs_touch:
        touch_session(conn, token)
    return check.actor


def sign_out(conn: Connection, token: str, *, actor: Actor) -> None:
    conn.execute(delete(user_session).where(user_session.c.token_hash == _digest(token)))
    record(conn, actor.label, [AuditEvent(AuditAction.USER_SIGNED_OUT, "user", actor.name)])


KEY_ROLES = (Role.SYSTEM, Role.MONITOR)  # the roles an API key may carry
KEY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # a system's name, or a monitoring key's


def create_api_key(
    conn: Connection, system: str, *, created_by: str, role: Role = Role.SYSTEM
) -> str:
    """A new API key for `system` (role `system`), or a monitoring key named `system`
    (role `monitor`). Returned once; only its hash is kept."""
    if role not in KEY_ROLES:
        raise InputRejected(
            f"an API key carries the role system or monitor, not {role}",
            hint="people sign in with a user of their own: `accord users add`",
        )
    if not KEY_NAME.match(system):
        raise InputRejected(
            f"{system!r} is not a key name: lower-case letters, digits, - and _, "
            "starting with a letter, at most 64 characters"
        )
    secret = f"{KEY_PREFIX}_{system}_{secrets.token_urlsafe(32)}"
    # The readable start of the key (4 random characters), to tell keys apart in lists.
    prefix = secret[: len(KEY_PREFIX) + len(system) + 6]
    conn.execute(
        api_key.insert(),
        {
            "system": system,
            "role": str(role),
            "prefix": prefix,
            "key_hash": _digest(secret),
            "created_by": created_by,
            "created_at": utcnow(),
        },
    )
    details = {"prefix": prefix} | ({} if role is Role.SYSTEM else {"role": str(role)})
    record(conn, created_by, [AuditEvent(AuditAction.API_KEY_CREATED, "system", system, details)])
    return secret


def actor_for_api_key(conn: Connection, secret: str) -> Actor:
    row = conn.execute(
        select(api_key.c.system, api_key.c.role).where(
            api_key.c.key_hash == _digest(secret), api_key.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        raise NotAuthenticated("unknown or revoked API key")
    role = Role(row.role)
    # a monitoring key is no system: it never passes a check meant for a system's own key,
    # and the audit log names it as what it is
    return Actor("system" if role is Role.SYSTEM else "monitor", row.system, role)


def ensure_user(conn: Connection, username: str, password: str, role: Role, *, actor: str) -> None:
    """Create the user, or reset the password and role of the existing one (the demo's
    admin gets a fresh password on every run)."""
    exists = conn.execute(select(app_user.c.id).where(app_user.c.username == username)).first()
    if exists is None:
        create_user(conn, username, password, role, created_by=actor)
        return
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputRejected(f"a password has at least {MIN_PASSWORD_CHARS} characters")
    conn.execute(
        update(app_user)
        .where(app_user.c.id == exists.id)
        .values(password_hash=_passwords.hash(password), role=str(role), active=True)
    )
    record(conn, actor, [AuditEvent(AuditAction.USER_PASSWORD_RESET, "user", username)])
