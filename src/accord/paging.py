"""Pages of a longer list, as every listing service hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accord.errors import InputRejected

MAX_PAGE = 200


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def check_window(limit: int, offset: int) -> None:
    """Refuse a page size or start no listing accepts."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputRejected(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise InputRejected("offset must not be negative")
