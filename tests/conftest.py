"""Fixtures shared by every test: real stores on SQLite and PostgreSQL, projects, data.

PostgreSQL is the one at 127.0.0.1:5432 (database `test`), or ACCORD_TEST_POSTGRES_URL.
Each test run gets its own schema, dropped at the end; each test starts from empty tables.
Without the server, PostgreSQL tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from accord.settings import Settings
from accord.store.engine import make_engine, writing
from accord.store.migrate import upgrade
from accord.store.tables import metadata
from accord.workspace import Workspace
from tests.services import require_database

POSTGRES_URL = os.environ.get(
    "ACCORD_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
DEMO_PROJECT = Path(__file__).parent.parent / "src" / "accord" / "demo" / "project"
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """A migrated schema of its own for this test run."""
    require_database("PostgreSQL", POSTGRES_URL)
    schema = f"accord_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    engine = make_engine(f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}")
    upgrade(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _empty(engine: Engine) -> None:
    with writing(engine) as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        conn.execute(
            text("INSERT INTO counter (name, value) VALUES ('golden_id', 0), ('audit_seq', 0)")
        )


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty store on each backend in turn."""
    if request.param == "sqlite":
        sqlite = make_engine(f"sqlite:///{tmp_path / 'accord.sqlite3'}")
        upgrade(sqlite)
        yield sqlite
        sqlite.dispose()
    else:
        pg: Engine = request.getfixturevalue("postgres_engine")
        _empty(pg)
        yield pg


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'accord.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def demo_project_dir(tmp_path: Path) -> Path:
    """A copy of the demo project's files in a fresh folder, matching with the
    deterministic rules engine: tests of the pipeline around matching need decisions
    they can predict on a handful of records, which a model learned from those same few
    records cannot promise. The learned engine has its own tests (tests/match)."""
    target = tmp_path / "project"
    shutil.copytree(DEMO_PROJECT, target)
    config = target / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    start, end = text.index("\nmatch:"), text.index("\nsurvivorship:")
    rules = (Path(__file__).parent / "rules_match.yaml").read_text(encoding="utf-8")
    text = text[: start + 1] + rules.rstrip() + "\n" + text[end:]
    # Tests sign in with a password alone; those of the second factor set what they need.
    text = text.replace("mfa_required: [admin, steward]", "mfa_required: []")
    config.write_text(text, encoding="utf-8")
    return target


@pytest.fixture
def workspace(engine: Engine, demo_project_dir: Path) -> Workspace:
    """The demo project over the parametrized store."""
    return Workspace(demo_project_dir, engine, Settings())
