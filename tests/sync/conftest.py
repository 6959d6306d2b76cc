"""Fixtures of the sync-out tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sync.jetstream import Subject, jetstream_available


@pytest.fixture
def subject() -> Iterator[Subject]:
    """A JetStream stream of the test's own, deleted afterwards."""
    jetstream_available()
    made = Subject()
    made.create()
    yield made
    made.delete()
