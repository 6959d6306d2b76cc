"""How a system's records come in, besides files loaded by hand and the push API: one
optional block per channel under `systems.<name>.intake` in accord.yaml.

Secrets (database URLs with passwords, webhook keys) are never written here: a block
names the environment variable that holds them.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from accord.config.matching import StrictModel

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(text: str) -> int:
    """`30s`, `1m`, `2h` in seconds; raises ValueError for anything else."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 1m or 2h")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


class DropConfig(StrictModel):
    """A watched folder: files another system writes there are loaded, one load per file,
    then moved to `done/` or `failed/` beside a report (docs/intake-drop.md)."""

    folder: str = Field(
        min_length=1, description="the folder to watch, relative to the project folder or absolute"
    )
    pattern: str | list[str] | None = Field(
        None,
        description="file names to take (glob, case-insensitive); by default those of the "
        "mapping's format, plain or .gz: *.csv, *.csv.gz or *.jsonl, *.ndjson, ...",
    )
    every: str = Field("1m", description="how often a worker scans the folder: 30s, 1m, 2h")
    settle: str = Field(
        "2s",
        description="a file changed more recently than this is still being written and is "
        "left for the next scan (0s to take files at once)",
    )

    @field_validator("every", "settle")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @field_validator("every")
    @classmethod
    def _not_zero(cls, value: str) -> str:
        if duration_seconds(value) == 0:
            raise ValueError("scan at most once a second: give 1s or more")
        return value

    @field_validator("pattern")
    @classmethod
    def _patterns_are_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        for pattern in [value] if isinstance(value, str) else value or []:
            if not pattern or "/" in pattern or "\\" in pattern:
                raise ValueError(f"{pattern!r}: a pattern matches file names, not paths")
        return value

    @property
    def every_seconds(self) -> int:
        return duration_seconds(self.every)

    @property
    def settle_seconds(self) -> int:
        return duration_seconds(self.settle)


class IntakeConfig(StrictModel):
    """The channels a system sends records through. Each block is optional; a system
    with none is loaded by `accord load` and the push API only."""

    drop: DropConfig | None = Field(None, description="a watched folder (file drop)")
