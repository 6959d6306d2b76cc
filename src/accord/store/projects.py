"""Applied versions of the project files."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from accord.store.dialect import insert_ignoring_duplicates
from accord.store.tables import project_version
from accord.store.types import utcnow


def is_known(conn: Connection, digest: str) -> bool:
    query = select(project_version.c.digest).where(project_version.c.digest == digest)
    return conn.execute(query).first() is not None


def add(conn: Connection, digest: str, content: dict[str, Any], actor: str) -> None:
    insert_ignoring_duplicates(
        conn,
        project_version,
        [{"digest": digest, "applied_at": utcnow(), "applied_by": actor, "content": content}],
    )
