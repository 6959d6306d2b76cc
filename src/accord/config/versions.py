"""Configuration as code: every version of the project that does work is kept and audited."""

from __future__ import annotations

from sqlalchemy import Connection

from accord.config.loader import Project
from accord.govern.audit import AuditAction, AuditEvent, record
from accord.store import projects


def apply(conn: Connection, project: Project, actor: str) -> bool:
    """Record this version of the project if it is new; True when it was."""
    if not projects.add(conn, project.digest, project.as_document(), actor):
        return False
    record(
        conn,
        actor,
        [
            AuditEvent(
                AuditAction.PROJECT_APPLIED,
                "project",
                project.digest,
                {"project": project.config.project, "mappings": sorted(project.mappings)},
            )
        ],
    )
    return True
