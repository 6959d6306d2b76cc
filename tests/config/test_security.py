"""The `security` block of accord.yaml: which roles sign in with a second factor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from accord.config.loader import load_project
from accord.config.scaffold import scaffold
from accord.errors import ProjectInvalid
from accord.govern.permissions import Role

DEMO = Path(__file__).parent.parent.parent / "src" / "accord" / "demo" / "project"


def _with_security(root: Path, block: str) -> Path:
    config = root / "accord.yaml"
    text = config.read_text(encoding="utf-8")
    start = text.find("\nsecurity:")
    kept = text if start < 0 else text[:start]
    config.write_text(kept + block, encoding="utf-8")
    return root


def test_the_demo_requires_it_of_admins_and_stewards(tmp_path: Path) -> None:
    scaffold(tmp_path / "new")
    assert load_project(tmp_path / "new").config.security.mfa_roles == {Role.ADMIN}
    shutil.copytree(DEMO, tmp_path / "demo")
    demo = load_project(tmp_path / "demo").config.security
    assert demo.mfa_roles == {Role.ADMIN, Role.STEWARD}


def test_without_the_block_admins_need_it(demo_project_dir: Path) -> None:
    root = _with_security(demo_project_dir, "\n")
    assert load_project(root).config.security.mfa_roles == {Role.ADMIN}
    root = _with_security(demo_project_dir, "\nsecurity:\n  mfa_required: []\n")
    assert load_project(root).config.security.mfa_roles == frozenset()


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ("\nsecurity:\n  mfa_required: [admin, system]\n", "accord.yaml:"),
        ("\nsecurity:\n  mfa_required: admin\n", "mfa_required"),
        ("\nsecurity:\n  mfa: [admin]\n", "mfa_required"),  # did you mean
    ],
)
def test_a_wrong_block_is_reported_with_its_line(
    demo_project_dir: Path, block: str, says: str
) -> None:
    root = _with_security(demo_project_dir, block)
    with pytest.raises(ProjectInvalid) as caught:
        load_project(root)
    problems = "\n".join(str(p) for p in caught.value.problems)
    assert says in problems and "security" in problems
