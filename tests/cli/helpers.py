"""Running `accord` commands in the tests' own process."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from accord.cli.main import app

runner = CliRunner()


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def run(*args: str | Path, code: int = 0, env: dict[str, str] | None = None) -> str:
    """The output of `accord ARGS`, which must end with exit code `code`; a command
    refused (a non-zero code) must say why, not crash with a traceback."""
    result = invoke(*args, env=env)
    assert result.exit_code == code, result.output
    if code:
        assert isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
    return result.output
