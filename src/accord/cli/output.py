"""Rendering for the command line: errors with hints, reports as tables, progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from accord.errors import AccordError, ProjectInvalid

if TYPE_CHECKING:
    from accord.workspace import Workspace

console = Console()
errors = Console(stderr=True)

# The first argument of every command that works on a project.
ProjectDir = Annotated[
    Path,
    typer.Argument(help="the project folder (holds accord.yaml)", file_okay=False),
]

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn Accord's errors into a clear message with a hint and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ProjectInvalid as exc:
            errors.print(f"[bold red]error:[/] {exc.message}")
            for problem in exc.problems:
                errors.print(
                    f"  [bold]{escape(problem.where)}[/]: {escape(problem.message)}",
                    highlight=False,
                    markup=True,
                    soft_wrap=True,
                )
                if problem.hint:
                    errors.print(
                        f"      hint: {escape(problem.hint)}",
                        highlight=False,
                        style="dim",
                        soft_wrap=True,
                    )
            errors.print(f"  hint: {escape(exc.hint or '')}", style="dim")
            raise typer.Exit(1) from None
        except AccordError as exc:
            print_error(exc)
            raise typer.Exit(1) from None

    return wrapper


def print_error(exc: AccordError) -> None:
    """An error and its hint on stderr, as every command shows them."""
    errors.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        errors.print(f"  hint: {escape(exc.hint)}", style="dim", highlight=False, soft_wrap=True)


def bytes_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def count_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@contextmanager
def stages(title: str, names: list[str]) -> Iterator[Callable[[str], None]]:
    """A progress bar that advances one step per named stage; yields the stage callback."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(title, total=len(names))
        started: list[str] = []

        def on_stage(name: str) -> None:
            if started:
                progress.advance(task)
            started.append(name)
            progress.update(task, description=f"{title}: {name}")

        yield on_stage
        progress.update(task, completed=len(names), description=f"{title}: done")


def new_table(title: str, columns: list[str]) -> Table:
    """An empty table in the house style: the first column left, the others right."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for i, column in enumerate(columns):
        out.add_column(column, justify="right" if i else "left")
    return out


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    out = new_table(title, columns)
    for row in rows:
        out.add_row(*(_cell(v) for v in row))
    return out


def loads_table(title: str, first: str, reports: list[Any], name: Callable[[Any], str]) -> Table:
    """What loads did (`LoadReport`s), one row each, named by `name`."""
    return table(
        title,
        [first, "read", "new", "changed", "unchanged", "quarantined", "flagged", "seconds"],
        [
            [
                name(r),
                r.read,
                r.new,
                r.changed,
                r.unchanged + r.repeated_in_file,
                r.quarantined,
                r.flagged,
                r.seconds,
            ]
            for r in reports
        ],
    )


def open_workspace(directory: Path) -> Workspace:
    """The project in `directory` and its store (loaded only by the commands that use
    them, so that `accord --help` starts fast)."""
    from accord.workspace import open_workspace as open_project  # noqa: PLC0415

    return open_project(directory)


def print_json(value: Any) -> None:
    """`--json` output: plain JSON on stdout, dates and the like as strings."""
    sys.stdout.write(json.dumps(value, default=str, indent=2, ensure_ascii=False) + "\n")


def _cell(value: Any) -> str:
    """A table cell: numbers formatted, text escaped (values come from source systems,
    and `[b]` in a street name is text, not a style)."""
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else escape(str(value))


@contextmanager
def activity(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the current step and the time spent; yields the step callback."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(title, total=None)

        def on_step(step: str) -> None:
            progress.update(task, description=f"{title}: {step}")

        yield on_step
        progress.update(task, description=f"{title}: done", total=1, completed=1)
