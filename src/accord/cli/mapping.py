"""`accord map`: try a system's mapping on a file before loading it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli.output import ProjectDir, console, print_json, reports_errors
from accord.config.loader import load_project

if TYPE_CHECKING:
    from accord.intake.preview import PreviewRow

map_app = typer.Typer(
    help="Mappings: try one on a file, with nothing stored.", no_args_is_help=True
)

_STATUS_STYLE = {"ok": "green", "flagged": "yellow", "quarantined": "red"}
_CELL_CHARS = 120  # a long source value is shortened on screen; --json shows all of it


@map_app.command("preview")
@reports_errors
def map_preview(
    directory: ProjectDir,
    file: Annotated[Path, typer.Argument(help="a CSV or JSON Lines file, gzip allowed")],
    system: Annotated[str, typer.Option("--system", "-s", help="the system it comes from")],
    rows: Annotated[int, typer.Option(help="how many rows to show, from the top")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Show what a load would make of FILE's first rows: source and canonical fields side
    by side, flagged issues and quarantine reasons. Needs no database; writes nothing."""
    from accord.intake.preview import preview  # noqa: PLC0415

    project = load_project(directory)
    result = preview(project, system, file, rows)
    if as_json:
        print_json([row.as_dict() for row in result])
        return
    for row in result:
        console.print(_row_table(row))
    counts = {s: sum(r.status == s for r in result) for s in _STATUS_STYLE}
    console.print(
        f"{len(result)} rows: [green]{counts['ok']} ok[/], [yellow]{counts['flagged']} flagged[/], "
        f"[red]{counts['quarantined']} quarantined[/]; nothing was stored"
    )
    if counts["flagged"] or counts["quarantined"]:
        console.print(
            "next: fix the mapping (or the export) and preview again; "
            f"when it looks right, run [bold]accord load {escape(str(directory))} "
            f"--system {escape(system)} {escape(str(file))}[/]"
        )


def _row_table(row: PreviewRow) -> Table:
    style = _STATUS_STYLE[row.status]
    title = f"{escape(row.location)}  [{style}]{row.status}[/]" + (
        f"  id {escape(row.source_id)}" if row.source_id else ""
    )
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in ("source field", "value", "canonical field", "value"):
        table.add_column(column, overflow="fold")
    source = (
        [(str(k), _shown(v)) for k, v in row.source.items()]
        if row.source is not None
        else [("(raw)", _shown(row.raw))]
    )
    canonical = [(k, _shown(v)) for k, v in row.canonical.items()]
    for i in range(max(len(source), len(canonical))):
        left = source[i] if i < len(source) else ("", "")
        right = canonical[i] if i < len(canonical) else ("", "")
        table.add_row(*(escape(cell) for cell in (*left, *right)))
    for label, reasons, colour in (
        ("issue", row.issues, "yellow"),
        ("quarantine", row.reasons, "red"),
    ):
        for reason in reasons:
            where = f" ({reason.field})" if reason.field else ""
            table.add_row(
                f"[{colour}]{label}[/]",
                escape(f"{reason.code}{where}: {reason.message}"),
                "",
                "",
            )
    return table


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"
