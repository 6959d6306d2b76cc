"""Signing in with a second factor, setting one up, and administering users, on both
stores."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from accord.errors import Conflict, InputRejected, NotAllowed, NotAuthenticated, NotFound
from accord.govern import identity, mfa, users
from accord.govern.audit import AuditAction
from accord.govern.identity import Pending, Purpose
from accord.govern.permissions import Actor, Role, cli_actor
from accord.store.engine import writing
from accord.store.tables import audit_log, mfa_challenge, user_session
from accord.store.types import utcnow
from tests.accounts import enrol

PASSWORD = "correct horse battery"
ADMINS = frozenset({Role.ADMIN})


def _user(engine: Engine, name: str, role: Role = Role.STEWARD) -> int:
    with writing(engine) as conn:
        return identity.create_user(conn, name, PASSWORD, role, created_by="test")


def _person(engine: Engine, name: str) -> Actor:
    actor, _ = identity.sign_in(engine, name, PASSWORD)
    return actor


def _enrol(engine: Engine, name: str, *, at: datetime | None = None) -> tuple[str, tuple[str, ...]]:
    """Set up a second factor for `name` as they would on /account, with the code of the
    time step of `at` (now): (secret, codes)."""
    return enrol(engine, name, PASSWORD, at=at)


def _next_code(secret: str) -> str:
    """The code of the next time step: still taken (one step of drift), and later than
    the one the set-up used."""
    return mfa.code_at(secret, utcnow() + timedelta(seconds=30))


def _actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log.c.action).order_by(audit_log.c.seq)).scalars())


def test_a_user_with_a_second_factor_signs_in_in_two_steps(engine: Engine) -> None:
    _user(engine, "ann")
    secret, _ = _enrol(engine, "ann")
    started = identity.begin_sign_in(engine, "ann", PASSWORD)
    assert isinstance(started, Pending)
    assert started.purpose is Purpose.VERIFY and started.secret is None
    assert started.expires_at - utcnow() <= timedelta(minutes=5)
    with pytest.raises(NotAuthenticated, match="wrong code"):
        identity.finish_sign_in(engine, started.token, "000000")
    actor, session = identity.finish_sign_in(engine, started.token, _next_code(secret))
    assert actor.name == "ann"
    with engine.connect() as conn:
        assert identity.check_session(conn, session.token).actor == actor
    # the pending sign-in is used up
    with pytest.raises(NotAuthenticated, match="has ended"):
        identity.finish_sign_in(engine, started.token, _next_code(secret))
    actions = _actions(engine)
    assert actions.count(AuditAction.USER_MFA_FAILED) == 1  # kept, though refused
    assert actions[-1] == AuditAction.USER_SIGNED_IN


def test_a_code_is_taken_once(engine: Engine) -> None:
    _user(engine, "ann")
    set_up_at = utcnow()
    secret, _ = _enrol(engine, "ann", at=set_up_at)
    # the code of the set-up itself is spent: first thing after it, nothing later used yet
    with pytest.raises(NotAuthenticated, match="wrong code"):
        identity.sign_in(engine, "ann", PASSWORD, code=mfa.code_at(secret, set_up_at))
    code = _next_code(secret)
    identity.sign_in(engine, "ann", PASSWORD, code=code)
    with pytest.raises(NotAuthenticated, match="wrong code"):
        identity.sign_in(engine, "ann", PASSWORD, code=code)


def test_the_one_step_api_asks_for_the_code(engine: Engine) -> None:
    _user(engine, "ann")
    secret, _ = _enrol(engine, "ann")
    with pytest.raises(identity.CodeNeeded, match="code from an authenticator app"):
        identity.sign_in(engine, "ann", PASSWORD)
    with pytest.raises(NotAuthenticated, match="wrong username or password"):
        identity.sign_in(engine, "ann", "wrong password!", code=_next_code(secret))
    actor, _ = identity.sign_in(engine, "ann", PASSWORD, code=_next_code(secret))
    assert actor.name == "ann"


def test_recovery_codes_work_once_each(engine: Engine) -> None:
    user_id = _user(engine, "ann")
    _, codes = _enrol(engine, "ann")
    assert len(codes) == mfa.RECOVERY_CODES
    identity.sign_in(engine, "ann", PASSWORD, code=codes[0])
    with pytest.raises(NotAuthenticated):
        identity.sign_in(engine, "ann", PASSWORD, code=codes[0])
    started = identity.begin_sign_in(engine, "ann", PASSWORD)
    assert isinstance(started, Pending)
    identity.finish_sign_in(engine, started.token, codes[1].upper().replace("-", " "))
    with engine.connect() as conn:
        assert identity.mfa_status(conn, user_id).recovery_codes_left == len(codes) - 2
    assert _actions(engine).count(AuditAction.USER_RECOVERY_CODE_USED) == 2
    # another user's code is no code of ann's
    _user(engine, "bob")
    _, bobs = _enrol(engine, "bob")
    with pytest.raises(NotAuthenticated):
        identity.sign_in(engine, "ann", PASSWORD, code=bobs[0])


def test_a_pending_sign_in_ends_after_five_wrong_codes_or_its_time(engine: Engine) -> None:
    _user(engine, "ann")
    secret, _ = _enrol(engine, "ann")
    started = identity.begin_sign_in(engine, "ann", PASSWORD)
    assert isinstance(started, Pending)
    for _ in range(identity.CHALLENGE_FAILURES):
        with pytest.raises(NotAuthenticated):
            identity.finish_sign_in(engine, started.token, "000000")
    with pytest.raises(NotAuthenticated, match="has ended"):
        identity.finish_sign_in(engine, started.token, _next_code(secret))
    late = identity.begin_sign_in(engine, "ann", PASSWORD)
    assert isinstance(late, Pending)
    with writing(engine) as conn:
        conn.execute(update(mfa_challenge).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(NotAuthenticated, match="has ended"):
        identity.finish_sign_in(engine, late.token, _next_code(secret))


def test_a_role_that_requires_a_second_factor_sets_one_up_before_the_session(
    engine: Engine,
) -> None:
    user_id = _user(engine, "root", Role.ADMIN)
    with pytest.raises(identity.EnrolmentNeeded, match="role admin"):
        identity.sign_in(engine, "root", PASSWORD, mfa_roles=ADMINS)
    started = identity.begin_sign_in(engine, "root", PASSWORD, mfa_roles=ADMINS)
    assert isinstance(started, Pending) and started.purpose is Purpose.ENROL
    assert started.secret
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(user_session)).scalar_one() == 0
        # the pending set-up is not a pending sign-in
        with pytest.raises(NotAuthenticated):
            identity.pending(conn, started.token, Purpose.VERIFY)
    with pytest.raises(NotAuthenticated, match="not the code"):
        identity.finish_enrolment(engine, started.token, "123456")
    actor, session, codes = identity.finish_enrolment(
        engine, started.token, mfa.code_at(started.secret, utcnow())
    )
    assert (actor.name, len(codes)) == ("root", mfa.RECOVERY_CODES)
    with engine.connect() as conn:
        assert identity.mfa_status(conn, user_id).enrolled_at is not None
        assert identity.check_session(conn, session.token).actor.name == "root"
    assert AuditAction.USER_MFA_ENROLLED in _actions(engine)


def test_setting_up_on_the_account_page(engine: Engine) -> None:
    _user(engine, "ann")
    _user(engine, "bob")
    ann, bob = _person(engine, "ann"), _person(engine, "bob")
    with writing(engine) as conn:
        pending = identity.start_enrolment(conn, ann)
    assert pending.secret is not None
    code = mfa.code_at(pending.secret, utcnow())
    with pytest.raises(InputRejected, match="not the code"):
        identity.confirm_enrolment(engine, ann, pending.token, "999999")
    with pytest.raises(NotAuthenticated, match="someone else"):
        identity.confirm_enrolment(engine, bob, pending.token, code)
    identity.confirm_enrolment(engine, ann, pending.token, code)
    with pytest.raises(Conflict, match="already"), writing(engine) as conn:
        identity.start_enrolment(conn, ann)
    with pytest.raises(NotAllowed), writing(engine) as conn:
        identity.start_enrolment(conn, cli_actor())


def test_turning_the_second_factor_off(engine: Engine) -> None:
    user_id = _user(engine, "ann")
    ann = _person(engine, "ann")  # signed in before the set-up
    secret, _ = _enrol(engine, "ann")
    with pytest.raises(NotAllowed, match="cannot be turned off"):
        identity.disable_mfa(engine, ann, _next_code(secret), mfa_roles={Role.STEWARD})
    with pytest.raises(InputRejected, match="wrong code"):
        identity.disable_mfa(engine, ann, "123456")
    identity.disable_mfa(engine, ann, _next_code(secret))
    with engine.connect() as conn:
        assert identity.mfa_status(conn, user_id) == identity.MfaStatus(None, 0)
    with pytest.raises(Conflict, match="no second factor"):
        identity.disable_mfa(engine, ann, _next_code(secret))
    assert identity.sign_in(engine, "ann", PASSWORD)[0].name == "ann"
    assert AuditAction.USER_MFA_DISABLED in _actions(engine)


def test_administering_users(engine: Engine) -> None:
    admin = cli_actor()
    with writing(engine) as conn:
        users.create(conn, admin, "root", PASSWORD, Role.ADMIN)
        users.create(conn, admin, "vera", PASSWORD, Role.VIEWER)
        with pytest.raises(InputRejected, match="a person holds one of the roles"):
            users.create(conn, admin, "crm", PASSWORD, Role.SYSTEM)
    _, vera_session = identity.sign_in(engine, "vera", PASSWORD)
    with writing(engine) as conn:
        users.change_role(conn, admin, "vera", Role.STEWARD)
    with engine.connect() as conn:
        # the role is read from the user on every request
        assert identity.check_session(conn, vera_session.token).actor.role is Role.STEWARD
        listed = {user.username: user for user in users.list_users(conn, admin)}
    assert listed["vera"].role is Role.STEWARD and listed["vera"].last_login_at is not None
    assert listed["root"].mfa_enrolled_at is None
    with writing(engine) as conn:
        users.set_active(conn, admin, "vera", active=False)
    with engine.connect() as conn, pytest.raises(NotAuthenticated):
        identity.check_session(conn, vera_session.token)
    with pytest.raises(NotAuthenticated):
        identity.sign_in(engine, "vera", PASSWORD)
    with writing(engine) as conn:
        users.set_active(conn, admin, "vera", active=True)
        with pytest.raises(NotFound):
            users.change_role(conn, admin, "nobody", Role.VIEWER)
    assert identity.sign_in(engine, "vera", PASSWORD)[0].role is Role.STEWARD
    actions = _actions(engine)
    for action in (
        AuditAction.USER_ROLE_CHANGED,
        AuditAction.USER_DEACTIVATED,
        AuditAction.USER_REACTIVATED,
    ):
        assert action in actions


def test_the_last_active_admin_stays(engine: Engine) -> None:
    _user(engine, "root", Role.ADMIN)
    root = _person(engine, "root")
    with writing(engine) as conn:
        with pytest.raises(Conflict, match="last active administrator"):
            users.change_role(conn, root, "root", Role.VIEWER)
        with pytest.raises(Conflict, match="last active administrator"):
            users.set_active(conn, root, "root", active=False)
        users.create(conn, root, "ada", PASSWORD, Role.ADMIN)
        users.set_active(conn, root, "ada", active=False)
        # an inactive admin is no admin to leave behind
        with pytest.raises(Conflict, match="last active administrator"):
            users.change_role(conn, root, "root", Role.STEWARD)
        users.set_active(conn, root, "ada", active=True)
        users.change_role(conn, root, "root", Role.STEWARD)
        users.change_role(conn, root, "ada", Role.ADMIN)  # no change, no guard


def test_only_administrators_administer(engine: Engine) -> None:
    _user(engine, "stewie", Role.STEWARD)
    _user(engine, "vera", Role.VIEWER)
    stewie = _person(engine, "stewie")
    with writing(engine) as conn:
        for attempt in (
            lambda: users.list_users(conn, stewie),
            lambda: users.create(conn, stewie, "x" * 5, PASSWORD, Role.ADMIN),
            lambda: users.change_role(conn, stewie, "stewie", Role.ADMIN),
            lambda: users.set_active(conn, stewie, "vera", active=False),
            lambda: users.reset_mfa(conn, stewie, "vera"),
        ):
            with pytest.raises(NotAllowed, match="users:manage"):
                attempt()


def test_promotion_to_a_role_requiring_a_factor_signs_out(engine: Engine) -> None:
    _user(engine, "vera", Role.VIEWER)
    _, session = identity.sign_in(engine, "vera", PASSWORD)
    with writing(engine) as conn:
        users.change_role(conn, cli_actor(), "vera", Role.ADMIN, mfa_roles=ADMINS)
    with engine.connect() as conn, pytest.raises(NotAuthenticated):
        identity.check_session(conn, session.token)
    started = identity.begin_sign_in(engine, "vera", PASSWORD, mfa_roles=ADMINS)
    assert isinstance(started, Pending) and started.purpose is Purpose.ENROL


def test_an_admin_resets_a_lost_second_factor(engine: Engine) -> None:
    user_id = _user(engine, "ann")
    secret, _ = _enrol(engine, "ann")
    _, session = identity.sign_in(engine, "ann", PASSWORD, code=_next_code(secret))
    with writing(engine) as conn:
        users.reset_mfa(conn, cli_actor(), "ann")
        with pytest.raises(Conflict, match="no second factor"):
            users.reset_mfa(conn, cli_actor(), "ann")
    with engine.connect() as conn:
        assert identity.mfa_status(conn, user_id) == identity.MfaStatus(None, 0)
        with pytest.raises(NotAuthenticated):
            identity.check_session(conn, session.token)
    assert identity.sign_in(engine, "ann", PASSWORD)[0].name == "ann"
    assert AuditAction.USER_MFA_RESET in _actions(engine)
