"""A store for the stewardship pages' HTTP tests: Anna three times, chained (C1 - C2 by
email, C2 - C3 by phone), C1 and C3 decided different, so the C2 - C3 link is held for
review; Bob (C4) alone; a pair C1 - C4 queued once and withdrawn. C3's street is hostile
markup. Customers: C0000001 = C1 + C2, C0000002 = Bob, C0000003 = C3. Matching is the
rules engine's, so decisions show at the next resolve (`Stewarding.resolve`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from accord.errors import Conflict
from accord.golden.resolve import resolve
from accord.govern import identity
from accord.govern.permissions import Actor, Role
from accord.intake.load import load_file
from accord.match.decisions import HELD_APART
from accord.steward import service
from accord.store import stewardship
from accord.store.engine import writing
from accord.store.types import utcnow
from accord.web.app import create_app
from accord.web.auth import CSRF_COOKIE
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, write_csv

PASSWORD = "a long enough password"
USERS = {"vera": Role.VIEWER, "otto": Role.OPERATOR, "stewie": Role.STEWARD}
C1, C2, C3, C4 = (("crm", f"C{i}") for i in range(1, 5))
HOSTILE = '<script>alert("street")</script>'


@dataclass
class Stewarding:
    client: TestClient
    workspace: Workspace
    held: int  # the open review, C2 - C3
    withdrawn: int  # C1 - C4

    def sign_in(self, username: str) -> None:
        with writing(self.workspace.engine) as conn, contextlib.suppress(Conflict):
            identity.create_user(conn, username, PASSWORD, USERS[username], created_by="t")
        response = self.client.post(
            "/api/v1/session", json={"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text

    def csrf(self) -> str:
        """The form token: the CSRF cookie a page set (a page is read first if none has)."""
        if not self.client.cookies.get(CSRF_COOKIE):
            self.client.get("/login")
        return str(self.client.cookies.get(CSRF_COOKIE))

    def resolve(self) -> dict[tuple[str, str], str]:
        engine, project = self.workspace.engine, self.workspace.project
        return resolve(engine, project, actor="test").assignment

    def decision(self, left: tuple[str, str], right: tuple[str, str]) -> str | None:
        with self.workspace.engine.connect() as conn:
            found = stewardship.decision_of(conn, stewardship.ordered(left, right))
        return None if found is None else str(found["decision"])


def held_for_review(
    workspace: Workspace, rows: list[dict[str, str]], folder: Path
) -> dict[tuple[str, str], tuple[int, str]]:
    """Load `rows` (Anna's chain and Bob), decide C1 and C3 different so that the C2 - C3
    link is held for review, queue C1 - C4 once and let the next resolve withdraw it.
    The reviews by their pair of source ids: (id, status)."""
    engine, project = workspace.engine, workspace.project
    load_file(engine, project, "crm", write_csv(folder / "crm.csv", rows), actor="test")
    resolve(engine, project, actor="test")
    with writing(engine) as conn:
        service.decide_pair(conn, Actor("cli", "setup", Role.ADMIN), C1, C3, decision="different")
    resolve(engine, project, actor="test")  # queues the held C2 - C3 link
    held = {"left": C2, "right": C3, "probability": 1.0, "reason": HELD_APART}
    doubt = {"left": C4, "right": C1, "probability": 0.7, "reason": "uncertain"}
    with writing(engine) as conn:
        stewardship.sync_reviews(conn, [held, doubt], utcnow())
    assignment = resolve(engine, project, actor="test").assignment  # withdraws C1 - C4
    assert assignment == {C1: "C0000001", C2: "C0000001", C3: "C0000003", C4: "C0000002"}
    with engine.connect() as conn:
        return {
            (r["left_source_id"], r["right_source_id"]): (r["id"], r["status"])
            for status in ("open", "withdrawn")
            for r in stewardship.list_reviews(conn, status)[0]
        }


def stewarding(workspace: Workspace, folder: Path) -> Iterator[Stewarding]:
    rows = anna_chain_and_bob()
    rows[2]["Street"] = HOSTILE
    reviews = held_for_review(workspace, rows, folder)
    with TestClient(create_app(workspace)) as client:
        yield Stewarding(client, workspace, reviews["C2", "C3"][0], reviews["C1", "C4"][0])
