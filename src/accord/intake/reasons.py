"""Why a record was quarantined or flagged: a machine-readable code and a human message."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Reason:
    code: str  # "row.shape", "email.invalid", "source_id.missing", ...
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
