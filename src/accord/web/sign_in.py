"""What the sign-in routes of the API and the pages share: the cookies, the throttle
around each attempt, and the project's roles that need a second factor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from fastapi import Request, Response

from accord.errors import AccordError, NotAuthenticated
from accord.govern import identity
from accord.govern.permissions import Role
from accord.govern.throttle import SignInThrottle
from accord.store.types import utcnow
from accord.workspace import Workspace

# the pending sign-in (password right, code awaited); sent to the sign-in pages only
PENDING_COOKIE = "accord_pending"
PENDING_PATH = "/login"


def mfa_roles(ws: Workspace) -> frozenset[Role]:
    """The roles whose people sign in with a second factor (accord.yaml `security`)."""
    return ws.project.config.security.mfa_roles


def client_address(request: Request) -> str:
    # the peer's address: behind a proxy, run uvicorn with --proxy-headers so this is
    # the client's and not the proxy's
    return request.client.host if request.client else "unknown"


@contextmanager
def throttled(
    request: Request,
    username: str,
    failures: tuple[type[AccordError], ...] = (NotAuthenticated,),
) -> Iterator[None]:
    """Refuse the attempt (RateLimited) before anything is checked when `username` or
    the client failed too often lately; count it when it fails with one of `failures`.
    A right password awaiting its code is no failure."""
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    client = client_address(request)
    throttle.check(username, client)
    try:
        yield
    except (identity.CodeNeeded, identity.EnrolmentNeeded):
        raise
    except failures:
        throttle.failed(username, client)
        raise


def set_pending_cookie(response: Response, pending: identity.Pending, *, secure: bool) -> None:
    response.set_cookie(
        PENDING_COOKIE,
        pending.token,
        httponly=True,
        secure=secure,
        samesite="strict",
        path=PENDING_PATH,
        max_age=_seconds_until(pending.expires_at),
    )


def end_pending(response: Response) -> None:
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)


def _seconds_until(moment: datetime) -> int:
    return max(1, int((moment - utcnow()).total_seconds()))
