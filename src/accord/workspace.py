"""A project folder opened for work: its checked configuration and its migrated store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from accord.config.loader import PROJECT_FILE, Project, load_project
from accord.errors import Problem, ProjectInvalid
from accord.settings import Settings
from accord.store.engine import default_database_url, make_engine
from accord.store.migrate import upgrade

UPGRADE_ATTEMPTS = 4  # tries at opening the store when its connection is cut meanwhile


@dataclass
class Workspace:
    root: Path
    engine: Engine
    settings: Settings
    _project: Project | None = None

    @property
    def project(self) -> Project:
        """The project files, read and checked on first use (raises ProjectInvalid)."""
        if self._project is None:
            self._project = load_project(self.root)
        return self._project


def open_workspace(root: Path, settings: Settings | None = None) -> Workspace:
    """Open the store of the project at `root`, creating or upgrading its schema. A
    folder without accord.yaml is refused before anything is created in it."""
    if not (root / PROJECT_FILE).is_file():
        raise ProjectInvalid(
            [
                Problem(
                    str(root.resolve() / PROJECT_FILE),
                    "no accord.yaml here: this is not a project folder",
                    "check the folder, or create a project with `accord init DIR`",
                )
            ]
        )
    settings = settings or Settings()
    engine = make_engine(settings.database_url or default_database_url(root))
    for attempt in range(UPGRADE_ATTEMPTS):
        try:
            upgrade(engine)
            break
        except DBAPIError as exc:
            # a connection cut while starting (a database restarting, a failover) is
            # tried again: each migration is a transaction of its own
            if not exc.connection_invalidated or attempt == UPGRADE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * 2**attempt)
    return Workspace(root.resolve(), engine, settings)
