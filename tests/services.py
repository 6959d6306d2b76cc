"""The services tests talk to (PostgreSQL, MariaDB, Redis, NATS): one rule for when one
is missing. A skip on a developer's machine; under CI=true, a failure."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text


def require(what: str, url: str, probe: Callable[[], object]) -> None:
    """Run `probe`; if it raises, the service is missing: fail under CI=true, else skip."""
    try:
        probe()
    except Exception as exc:  # noqa: BLE001  (any failure means: not reachable)
        message = f"{what} not reachable at {url}: {exc!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (under CI=true a missing service is a failure)")
        pytest.skip(message)


def require_database(what: str, url: str) -> None:
    """A SQLAlchemy URL that answers `SELECT 1`."""

    def probe() -> None:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()

    require(what, url, probe)
