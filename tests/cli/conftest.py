"""The CLI tests' commands open their project's embedded store, whatever this machine's
environment says (a test that needs another database sets it itself)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
