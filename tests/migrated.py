"""A store of a test's own, migrated to an earlier revision: what a migration finds in a
store that already holds data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, create_engine, text

from accord.store.engine import make_engine
from accord.store.migrate import alembic_config
from tests.conftest import POSTGRES_URL


@contextmanager
def store_at(revision: str, backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A new store on `backend` ("sqlite", or "postgresql": a schema of its own, dropped
    afterwards) migrated to `revision`."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / f'at-{revision}.sqlite3'}")
        command.upgrade(alembic_config(engine), revision)
        yield engine
        engine.dispose()
        return
    schema = f"accord_at_{revision}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    engine = make_engine(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    try:
        command.upgrade(alembic_config(engine), revision)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
