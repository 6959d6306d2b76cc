"""Opening a project's store: a connection cut while the schema is checked (a database
restarting, a failover, an administrator's kill) is tried again, not fatal."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from accord import workspace
from accord.settings import Settings
from accord.store.migrate import upgrade


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_a_connection_cut_while_opening_is_tried_again(
    postgres_engine: Engine, demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def cut_once(engine: Engine) -> None:
        calls.append("upgrade")
        if len(calls) == 1:  # the first time, the server ends this connection mid-way
            with engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                killer = threading.Thread(target=_terminate, args=(postgres_engine, pid))
                killer.start()
                killer.join()
                conn.execute(text("SELECT 1"))
        upgrade(engine)

    monkeypatch.setattr(workspace, "upgrade", cut_once)
    opened = workspace.open_workspace(
        demo_project_dir, Settings(database_url=_url(postgres_engine))
    )
    opened.engine.dispose()
    assert calls == ["upgrade", "upgrade"]


def test_another_database_error_is_not_hidden(
    demo_project_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def refused(engine: Engine) -> None:
        calls.append("upgrade")
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))

    monkeypatch.setattr(workspace, "upgrade", refused)
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    with pytest.raises(DBAPIError, match="no_such_table"):
        workspace.open_workspace(demo_project_dir, Settings(database_url=url))
    assert calls == ["upgrade"]


def _terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
