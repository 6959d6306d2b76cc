"""Applied versions of the project files."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from accord.store.dialect import insert_new
from accord.store.tables import project_version
from accord.store.types import utcnow


def add(conn: Connection, digest: str, content: dict[str, Any], actor: str) -> bool:
    """Record a project version; False when that version was recorded before."""
    row = {"digest": digest, "applied_at": utcnow(), "applied_by": actor, "content": content}
    return insert_new(conn, project_version, row)
