"""`accord init`: a new project folder from the commented templates."""

from __future__ import annotations

import shutil
from pathlib import Path

from accord.config.loader import PROJECT_FILE
from accord.errors import Conflict

TEMPLATES = Path(__file__).parent / "templates"


def scaffold(root: Path, *, force: bool = False) -> list[Path]:
    """Write accord.yaml and mappings/crm.yaml under `root`; returns what was written.
    Refuses to overwrite an existing project unless `force`."""
    if (root / PROJECT_FILE).exists() and not force:
        raise Conflict(
            f"{root / PROJECT_FILE} exists already",
            hint="pick an empty folder, or pass --force to overwrite the project files",
        )
    written = []
    for source in sorted(TEMPLATES.rglob("*.yaml")):
        target = root / source.relative_to(TEMPLATES)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    return written
