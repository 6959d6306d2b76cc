"""People and systems: argon2 passwords, a second factor (TOTP, `govern.mfa`), sessions,
and hashed per-system API keys.

Signing in is one call with every factor for the JSON API (`sign_in`), or two steps for
the sign-in page: the password (`begin_sign_in`) leaves a short-lived pending sign-in,
found by a random token the browser holds, which a code completes (`finish_sign_in`,
or `finish_enrolment` for someone whose role requires a second factor they have not set
up). Each step that can be refused commits what the refusal wrote (its audit entry, the
count of wrong codes) before raising."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pwdlib import PasswordHash
from sqlalchemy import Connection, Engine, Row, delete, func, or_, select, update

from accord.errors import AccordError, Conflict, InputRejected, NotAllowed, NotAuthenticated
from accord.govern import mfa
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.govern.permissions import Actor, Role
from accord.store.engine import writing
from accord.store.tables import (
    api_key,
    app_user,
    mfa_challenge,
    mfa_recovery_code,
    user_mfa,
    user_session,
)
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
CHALLENGE_FAILURES = 5  # wrong codes after which a pending sign-in ends


class Purpose(StrEnum):
    """What a pending code is for."""

    VERIFY = "verify"  # a sign-in whose password was right, waiting for the code
    ENROL = "enrol"  # the same, for someone who must set up a second factor first
    ACCOUNT = "account"  # a signed-in person setting up a second factor


CHALLENGE_LIFETIME = {
    Purpose.VERIFY: timedelta(minutes=5),
    # adding an account to an app for the first time takes longer than typing a code
    Purpose.ENROL: timedelta(minutes=10),
    Purpose.ACCOUNT: timedelta(minutes=10),
}


class CodeNeeded(NotAuthenticated):
    """The password was right; the user signs in with a code as well."""


class EnrolmentNeeded(NotAuthenticated):
    """The password was right; the user's role requires a second factor they lack."""


class SignInEnded(NotAuthenticated):
    """The pending sign-in or set-up is over (expired, done, or this wrong code was its
    last try): only a new sign-in with the password goes on."""


@dataclass(frozen=True)
class Pending:
    """A sign-in or set-up waiting for a code."""

    token: str  # given to the browser once; only its hash is stored
    purpose: Purpose
    username: str
    expires_at: datetime
    secret: str | None  # the new TOTP secret, when setting one up


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


def _password_checked(conn: Connection, username: str, password: str) -> Row[Any]:
    """The user whose password this is; raises NotAuthenticated, saying nothing of why."""
    row = conn.execute(select(app_user).where(app_user.c.username == username)).first()
    valid = _passwords.verify(password, row.password_hash if row else _DUMMY_HASH)
    if row is None or not valid or not row.active:
        record(
            conn,
            "anonymous",
            [AuditEvent(AuditAction.USER_SIGN_IN_FAILED, "user", username[:150])],
        )
        raise NotAuthenticated("wrong username or password")
    return row


def _open_session(
    conn: Connection, user_id: int, username: str, role: str, factor: str | None
) -> tuple[Actor, Session]:
    now = utcnow()
    token = secrets.token_urlsafe(32)
    session = Session(token, now + SESSION_ABSOLUTE)
    conn.execute(
        user_session.insert(),
        {
            "token_hash": _digest(token),
            "user_id": user_id,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": session.expires_at,
        },
    )
    conn.execute(update(app_user).where(app_user.c.id == user_id).values(last_login_at=now))
    details = {"second_factor": factor} if factor else {}
    record(
        conn,
        f"user:{username}",
        [AuditEvent(AuditAction.USER_SIGNED_IN, "user", username, details)],
    )
    return Actor("user", username, Role(role), user_id), session


@contextmanager
def _remembering(engine: Engine) -> Iterator[Connection]:
    """A write transaction for a step of signing in that is committed even when the step
    is refused (an AccordError), so that the audit entry and the count of failures the
    refusal wrote are kept; the refusal is raised after the commit."""
    refusal: AccordError | None = None
    with writing(engine) as conn:
        try:
            yield conn
        except AccordError as exc:
            refusal = exc
    if refusal is not None:
        raise refusal


def sign_in(
    engine: Engine,
    username: str,
    password: str,
    *,
    code: str | None = None,
    mfa_roles: Collection[Role] = frozenset(),
) -> tuple[Actor, Session]:
    """Every factor at once (the JSON API): the password and, for someone with a second
    factor, its `code`. Raises CodeNeeded when the code is missing, EnrolmentNeeded
    when the role requires a second factor and there is none yet, NotAuthenticated
    otherwise."""
    with _remembering(engine) as conn:
        user = _password_checked(conn, username, password)
        stored = _factor(conn, user.id)
        if stored is not None:
            if not code:
                raise CodeNeeded(
                    "this user signs in with a code from an authenticator app as well",
                    hint="send it as `code`, with the username and password",
                )
            factor = _second_factor(conn, stored, user.username, code)
            if factor is None:
                raise NotAuthenticated("wrong code")
            return _open_session(conn, user.id, user.username, user.role, factor)
        if Role(user.role) in mfa_roles:
            raise EnrolmentNeeded(
                f"the role {user.role} signs in with a second factor, and this user has none yet",
                hint="sign in once in the web app (/login), which sets one up",
            )
        return _open_session(conn, user.id, user.username, user.role, None)


def begin_sign_in(
    engine: Engine, username: str, password: str, *, mfa_roles: Collection[Role] = frozenset()
) -> tuple[Actor, Session] | Pending:
    """The first step (the sign-in page): a session when the password is all this user
    needs, else a Pending sign-in waiting for a code (`verify`) or, when the role
    requires a second factor and there is none, for a new one to be set up (`enrol`)."""
    with _remembering(engine) as conn:
        user = _password_checked(conn, username, password)
        if _factor(conn, user.id) is not None:
            return _new_challenge(conn, user.id, user.username, Purpose.VERIFY)
        if Role(user.role) in mfa_roles:
            return _new_challenge(conn, user.id, user.username, Purpose.ENROL, mfa.new_secret())
        return _open_session(conn, user.id, user.username, user.role, None)


def finish_sign_in(engine: Engine, token: str, code: str) -> tuple[Actor, Session]:
    """The second step: the code (or a recovery code) for a pending sign-in. A wrong
    code counts against the pending sign-in, which ends after CHALLENGE_FAILURES."""
    with _remembering(engine) as conn:
        challenge = _challenge(conn, token, Purpose.VERIFY)
        stored = _factor(conn, challenge.user_id)
        factor = _second_factor(conn, stored, challenge.username, code)
        if factor is None:
            ended = _challenge_failed(conn, challenge)
            raise (SignInEnded if ended else NotAuthenticated)("wrong code", hint=_CODE_HINT)
        _end_challenge(conn, challenge)
        return _open_session(conn, challenge.user_id, challenge.username, challenge.role, factor)


def finish_enrolment(
    engine: Engine, token: str, code: str
) -> tuple[Actor, Session, tuple[str, ...]]:
    """The second step for someone whose role requires a second factor they had not set
    up: the first code of the new secret confirms it and opens the session. Returns the
    recovery codes, to be shown once."""
    with _remembering(engine) as conn:
        challenge = _challenge(conn, token, Purpose.ENROL)
        codes = _confirm_factor(conn, challenge, code, wrong=NotAuthenticated, ended=SignInEnded)
        actor, session = _open_session(
            conn, challenge.user_id, challenge.username, challenge.role, "totp"
        )
        return actor, session, codes


def pending(conn: Connection, token: str, purpose: Purpose) -> Pending:
    """A sign-in or enrolment waiting for a code; raises NotAuthenticated once it has
    ended (expired, done, or too many wrong codes)."""
    row = _challenge(conn, token, purpose)
    return Pending(token, purpose, row.username, row.expires_at, row.secret)


def start_enrolment(conn: Connection, actor: Actor) -> Pending:
    """A new secret for a signed-in person to add to their app; it is theirs once
    confirmed with a code (`confirm_enrolment`)."""
    user_id = _person(actor)
    if _factor(conn, user_id) is not None:
        raise Conflict(
            "you have a second factor already", hint="turn it off first to set up a new one"
        )
    return _new_challenge(conn, user_id, actor.name, Purpose.ACCOUNT, mfa.new_secret())


def confirm_enrolment(engine: Engine, actor: Actor, token: str, code: str) -> tuple[str, ...]:
    """Confirm a signed-in person's new secret with its current code; returns the
    recovery codes, to be shown once. A wrong code is InputRejected."""
    user_id = _person(actor)
    with _remembering(engine) as conn:
        challenge = _challenge(conn, token, Purpose.ACCOUNT)
        if challenge.user_id != user_id:
            raise NotAuthenticated("this set-up was started by someone else")
        if _factor(conn, user_id) is not None:
            raise Conflict("you have a second factor already")
        return _confirm_factor(conn, challenge, code, wrong=InputRejected, ended=InputRejected)


def disable_mfa(
    engine: Engine, actor: Actor, code: str, *, mfa_roles: Collection[Role] = frozenset()
) -> None:
    """Turn off the signed-in person's second factor, proven with a current code (or a
    recovery code). Refused when their role requires one."""
    user_id = _person(actor)
    if actor.role in mfa_roles:
        raise NotAllowed(
            f"the role {actor.role} signs in with a second factor: it cannot be turned off",
            hint="if your phone is lost, an administrator can reset it for you",
        )
    with _remembering(engine) as conn:
        stored = _factor(conn, user_id)
        if stored is None:
            raise Conflict("you have no second factor to turn off")
        if _second_factor(conn, stored, actor.name, code) is None:
            raise InputRejected("wrong code", hint=_CODE_HINT)
        remove_factor(conn, user_id)
        record(conn, actor.label, [AuditEvent(AuditAction.USER_MFA_DISABLED, "user", actor.name)])


@dataclass(frozen=True)
class MfaStatus:
    enrolled_at: datetime | None  # None: no second factor
    recovery_codes_left: int


def mfa_status(conn: Connection, user_id: int) -> MfaStatus:
    factor = _factor(conn, user_id)
    left = conn.execute(
        select(func.count())
        .select_from(mfa_recovery_code)
        .where(mfa_recovery_code.c.user_id == user_id, mfa_recovery_code.c.used_at.is_(None))
    ).scalar_one()
    return MfaStatus(factor.enrolled_at if factor else None, int(left))


def remove_factor(conn: Connection, user_id: int) -> None:
    """Forget a user's second factor, recovery codes and pending set-ups (not audited:
    the callers say why)."""
    for table in (user_mfa, mfa_recovery_code, mfa_challenge):
        conn.execute(delete(table).where(table.c.user_id == user_id))


def end_sessions(conn: Connection, user_id: int) -> None:
    """End every session and pending sign-in of a user."""
    conn.execute(delete(user_session).where(user_session.c.user_id == user_id))
    conn.execute(delete(mfa_challenge).where(mfa_challenge.c.user_id == user_id))


_CODE_HINT = "type the six digits the app shows now, or one of your recovery codes"


def _person(actor: Actor) -> int:
    if actor.kind != "user" or actor.user_id is None:
        raise NotAllowed("only a person signed in has a second factor")
    return actor.user_id


def _factor(conn: Connection, user_id: int) -> Row[Any] | None:
    return conn.execute(select(user_mfa).where(user_mfa.c.user_id == user_id)).first()


def _second_factor(
    conn: Connection, factor: Row[Any] | None, username: str, code: str
) -> str | None:
    """Take `code` as the current TOTP code ("totp") of the user's second factor
    `factor` (their `user_mfa` row, as `_factor` reads it) or one of their unused
    recovery codes ("recovery"), each good once; None, audited, when it is neither."""
    if factor is not None and mfa.is_totp_shaped(code):
        step = mfa.matching_step(factor.secret, code, utcnow(), after=factor.last_step)
        if step is not None and _take_step(conn, factor.user_id, step):
            return "totp"
    elif factor is not None and _take_recovery_code(conn, factor.user_id, code):
        left = mfa_status(conn, factor.user_id).recovery_codes_left
        event = AuditEvent(AuditAction.USER_RECOVERY_CODE_USED, "user", username, {"left": left})
        record(conn, f"user:{username}", [event])
        return "recovery"
    record(conn, f"user:{username}", [AuditEvent(AuditAction.USER_MFA_FAILED, "user", username)])
    return None


def _take_step(conn: Connection, user_id: int, step: int) -> bool:
    """Mark `step` used, unless it (or a later one) was already: one statement, so two
    sign-ins racing with the same code cannot both win."""
    taken = conn.execute(
        update(user_mfa)
        .where(
            user_mfa.c.user_id == user_id,
            or_(user_mfa.c.last_step.is_(None), user_mfa.c.last_step < step),
        )
        .values(last_step=step)
    )
    return taken.rowcount == 1


def _take_recovery_code(conn: Connection, user_id: int, code: str) -> bool:
    if not mfa.is_recovery_shaped(code):
        return False
    taken = conn.execute(
        update(mfa_recovery_code)
        .where(
            mfa_recovery_code.c.user_id == user_id,
            mfa_recovery_code.c.code_hash == mfa.recovery_digest(code),
            mfa_recovery_code.c.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return taken.rowcount == 1


def _confirm_factor(
    conn: Connection,
    challenge: Row[Any],
    code: str,
    *,
    wrong: type[AccordError],
    ended: type[AccordError],
) -> tuple[str, ...]:
    """Make the challenge's secret the user's second factor if `code` is its current
    code; returns the new recovery codes. A wrong code counts against the challenge and
    raises `wrong`, or `ended` when it was the challenge's last try."""
    now = utcnow()
    step = mfa.matching_step(challenge.secret, code, now, after=None)
    if step is None:
        event = AuditEvent(
            AuditAction.USER_MFA_FAILED, "user", challenge.username, {"while": "enrolling"}
        )
        record(conn, f"user:{challenge.username}", [event])
        raise (ended if _challenge_failed(conn, challenge) else wrong)(
            "that is not the code the app shows for this secret now",
            hint="add the secret to the app again, check the phone's clock, and type the "
            "six digits it shows",
        )
    remove_factor(conn, challenge.user_id)  # the challenge and any older attempt
    conn.execute(
        user_mfa.insert(),
        {
            "user_id": challenge.user_id,
            "secret": challenge.secret,
            "enrolled_at": now,
            "last_step": step,
        },
    )
    recovery = mfa.new_recovery_codes()
    conn.execute(
        mfa_recovery_code.insert(),
        [{"user_id": challenge.user_id, "code_hash": digest} for digest in recovery.digests],
    )
    record(
        conn,
        f"user:{challenge.username}",
        [AuditEvent(AuditAction.USER_MFA_ENROLLED, "user", challenge.username)],
    )
    return recovery.codes


def _new_challenge(
    conn: Connection, user_id: int, username: str, purpose: Purpose, secret: str | None = None
) -> Pending:
    now = utcnow()
    conn.execute(delete(mfa_challenge).where(mfa_challenge.c.expires_at <= now))
    token = secrets.token_urlsafe(32)
    expires_at = now + CHALLENGE_LIFETIME[purpose]
    conn.execute(
        mfa_challenge.insert(),
        {
            "token_hash": _digest(token),
            "user_id": user_id,
            "purpose": str(purpose),
            "secret": secret,
            "failures": 0,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    return Pending(token, purpose, username, expires_at, secret)


def _challenge(conn: Connection, token: str, purpose: Purpose) -> Row[Any]:
    row = conn.execute(
        select(mfa_challenge, app_user.c.username, app_user.c.role, app_user.c.active)
        .join(app_user, app_user.c.id == mfa_challenge.c.user_id)
        .where(mfa_challenge.c.token_hash == _digest(token), mfa_challenge.c.purpose == purpose)
    ).first()
    if row is None or row.expires_at <= utcnow() or not row.active:
        raise SignInEnded(
            "this sign-in has ended (it took too long, or had too many wrong codes)",
            hint="start again with your username and password",
        )
    return row


def _challenge_failed(conn: Connection, challenge: Row[Any]) -> bool:
    """Count a wrong code against the challenge; True when that ended it."""
    if challenge.failures + 1 >= CHALLENGE_FAILURES:
        _end_challenge(conn, challenge)
        return True
    conn.execute(
        update(mfa_challenge)
        .where(mfa_challenge.c.token_hash == challenge.token_hash)
        .values(failures=mfa_challenge.c.failures + 1)
    )
    return False


def _end_challenge(conn: Connection, challenge: Row[Any]) -> None:
    conn.execute(delete(mfa_challenge).where(mfa_challenge.c.token_hash == challenge.token_hash))


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
