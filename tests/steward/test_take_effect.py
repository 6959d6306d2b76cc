"""Decisions that show at once: after a decision or a split, its records are matched
again with the stored model (`steward.take_effect`), on each store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from accord.config.loader import load_project
from accord.demo.generator import generate
from accord.demo.run import inputs, write_project
from accord.errors import NotAllowed
from accord.golden.resolve import resolve
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.steward import service
from accord.store import golden as golden_store
from accord.store.engine import writing
from accord.workspace import Workspace

STEWARD = Actor("user", "stewie", Role.STEWARD)
Key = tuple[str, str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("take-effect")
    generate(root / "data", seed=3, customers=150)
    write_project(root / "project")
    return root


def _golden(engine: Engine, key: Key) -> str:
    with engine.connect() as conn:
        link = golden_store.crosswalk_of(conn, *key)
    assert link is not None
    return str(link["golden_id"])


def _pair_across_customers(engine: Engine) -> tuple[int, Key, Key]:
    with engine.connect() as conn:
        for item in service.queue(conn, STEWARD, limit=200).items:
            left = (item["left"]["system"], item["left"]["source_id"])
            right = (item["right"]["system"], item["right"]["source_id"])
            if _golden(engine, left) != _golden(engine, right):
                return item["id"], left, right
    raise AssertionError("no open pair across two customers")


def test_a_merge_and_its_split_show_at_once_with_the_learned_engine(
    engine: Engine, demo: Path
) -> None:
    project = load_project(demo / "project")
    for system, path in inputs(demo / "data"):
        load_file(engine, project, system, path, actor="test")
    resolve(engine, project, actor="test")
    review, left, right = _pair_across_customers(engine)
    kept = _golden(engine, left), _golden(engine, right)

    with writing(engine) as conn:
        service.decide(conn, STEWARD, review, "same")
        assert service.take_effect(conn, STEWARD, project, [left, right])
    merged = _golden(engine, left)
    assert merged == _golden(engine, right) and merged in kept
    with engine.connect() as conn:
        members = {(m["system"], m["source_id"]) for m in golden_store.members(conn, merged)}
        assert service.review(conn, STEWARD, review)["status"] == "decided"
    assert {left, right} <= members

    with writing(engine) as conn:
        service.split(conn, STEWARD, merged, [right])
        assert service.take_effect(conn, STEWARD, project, [right])
    assert _golden(engine, left) != _golden(engine, right)
    with engine.connect() as conn:  # every record is still in exactly one active customer
        for key in members:
            row = golden_store.get(conn, _golden(engine, key))
            assert row is not None and row["status"] == "active"


def test_with_the_rules_engine_decisions_wait_for_the_next_resolve(
    workspace: Workspace,
) -> None:
    with writing(workspace.engine) as conn:
        assert not service.take_effect(conn, STEWARD, workspace.project, [("crm", "C1")])
        with pytest.raises(NotAllowed):
            service.take_effect(
                conn, Actor("user", "otto", Role.OPERATOR), workspace.project, [("crm", "C1")]
            )
