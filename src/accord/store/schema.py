"""The schema objects migrations make that `tables.metadata` does not describe: each
backend's own (the customer search index, the tax id indexes), which autogenerate and
the schema test leave alone."""

from __future__ import annotations

from typing import Any

from accord.store import relationships, search

OUTSIDE_METADATA = (*search.INDEX_OBJECTS, *relationships.INDEX_OBJECTS)


def in_metadata(name: str | None, _type: Any, _parents: Any) -> bool:
    """Whether a schema object is described by `tables.metadata` (Alembic's
    `include_name` hook, for autogenerate and the schema test)."""
    return name is None or not name.startswith(OUTSIDE_METADATA)
