"""People with a second factor, for tests that sign in with one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from accord.govern import identity, mfa
from accord.store.engine import writing
from accord.store.types import utcnow


def enrol(
    engine: Engine, username: str, password: str, *, at: datetime | None = None
) -> tuple[str, tuple[str, ...]]:
    """Set up a second factor for `username` as they would on /account, with the code
    of the time step of `at` (now): (its secret, the recovery codes)."""
    actor, _ = identity.sign_in(engine, username, password)
    with writing(engine) as conn:
        pending = identity.start_enrolment(conn, actor)
    assert pending.secret is not None
    code = mfa.code_at(pending.secret, at or utcnow())
    return pending.secret, identity.confirm_enrolment(engine, actor, pending.token, code)
