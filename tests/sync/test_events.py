"""Sync out to a NATS JetStream subject: each golden change published once, in order, as
a CloudEvent, against the real server (127.0.0.1:4222), on both stores."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat
from sqlalchemy import Engine

from accord.store import outbox
from accord.sync.dispatch import RoundReport, TargetDispatcher
from accord.sync.nats import NatsChannel
from accord.workspace import Workspace
from tests.factories import anna_chain_and_bob, bob_row
from tests.sync.helpers import deliver, load, with_service_delivery
from tests.sync.jetstream import NATS_URL, Subject


@pytest.fixture
def published(
    engine: Engine, demo_project_dir: Path, subject: Subject, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    monkeypatch.setenv("ACCORD_TEST_NATS_URL", NATS_URL)
    return with_service_delivery(
        engine,
        demo_project_dir,
        "    deliver:\n"
        f"      nats: {{url_env: ACCORD_TEST_NATS_URL, subject: {subject.subject}}}\n"
        "      fields: {first_name: given_name, last_name: family_name, phone: phone}\n"
        "      retry: {max_attempts: 50, backoff: 20ms, max_backoff: 100ms}\n",
    )


def _deliver(workspace: Workspace) -> RoundReport:
    return RoundReport(**deliver(workspace, "service"))


def test_each_golden_change_is_published_once_in_order_as_a_cloudevent(
    published: Workspace, subject: Subject, tmp_path: Path
) -> None:
    engine, project = published.engine, published.project
    rows = anna_chain_and_bob()
    load(published, tmp_path, rows, "a.csv")
    load(published, tmp_path, [*rows[:-1], bob_row("+49 89 7777")], "b.csv")
    report = _deliver(published)
    with engine.connect() as conn:
        changes = outbox.after(conn, 0, 1000)
    assert report.sent == len(changes) == 3 and report.dead == 0

    messages = subject.messages()
    events = [JSONFormat().read(None, m.data) for m in messages]
    assert [e.get_id() for e in events] == [str(c.id) for c in changes]  # once each, in order
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [
        f"accord-service-{c.id}" for c in changes
    ]
    created, _, updated = events
    assert created.get_type() == "com.accord.customer.created"
    assert created.get_source() == f"accord/{project.config.project}"
    assert updated.get_type() == "com.accord.customer.updated"
    assert updated.get_subject() == changes[-1].golden_id
    data = updated.get_data()
    assert isinstance(data, dict)
    assert data["fields"] == {"first_name": "Bob", "last_name": "Jones", "phone": "+49897777"}
    assert data["changed"] == ["phone"]
    assert orjson.loads(messages[0].data)["specversion"] == "1.0"


def test_a_change_published_again_is_stored_once(
    published: Workspace, subject: Subject, tmp_path: Path
) -> None:
    engine, project = published.engine, published.project
    load(published, tmp_path, anna_chain_and_bob(), "a.csv")
    with engine.connect() as conn:
        changes = outbox.after(conn, 0, 1000)
    config = project.config.systems["service"].deliver
    assert config is not None and config.nats is not None
    channel = NatsChannel("service", config.nats, project=project.config.project)
    try:
        first = channel.publish([(c, {}) for c in changes])
        again = channel.publish([(c, {}) for c in changes])  # as after a lost acknowledgement
    finally:
        channel.close()
    assert [p.duplicate for p in first] == [False] * len(changes)
    assert [p.duplicate for p in again] == [True] * len(changes)
    assert len(subject.messages()) == len(changes)


def test_no_stream_for_the_subject_keeps_the_changes_waiting_with_what_to_do(
    published: Workspace, subject: Subject, tmp_path: Path
) -> None:
    engine, project = published.engine, published.project
    load(published, tmp_path, anna_chain_and_bob(), "a.csv")
    subject.delete()
    try:
        dispatcher = TargetDispatcher(engine, project, "service")
        try:
            report = dispatcher.round()
        finally:
            dispatcher.close()
        assert (report.sent, report.dead, report.retrying) == (0, 0, 2)
        assert report.error is not None and "no JetStream stream captures" in report.error
    finally:
        subject.create()
    assert _deliver(published).sent == 2
    assert len(subject.messages()) == 2
