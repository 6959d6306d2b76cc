"""`accord golden ...`: a steward's overrides of golden values. Each command parses,
calls `golden/overrides.py`, and renders."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from accord.cli.output import ProjectDir, console, open_workspace, print_json, reports_errors, table
from accord.errors import InputRejected
from accord.govern.permissions import cli_actor

golden_app = typer.Typer(
    help="Golden customers: pin a field's value over survivorship.", no_args_is_help=True
)


@golden_app.command("override")
@reports_errors
def override(
    directory: ProjectDir,
    golden_id: Annotated[str, typer.Argument(help="the customer, such as C0000042")],
    field: Annotated[str, typer.Argument(help="a field of the golden record, such as email")],
    value: Annotated[str | None, typer.Argument(help="the value to pin")] = None,
    reason: Annotated[str, typer.Option(help="why, for the lineage and the audit log")] = "",
    clear: Annotated[
        bool, typer.Option("--clear", help="remove the override: survivorship decides again")
    ] = False,
) -> None:
    """Pin FIELD of a customer to VALUE: it wins over every survivorship strategy at
    every resolve and is delivered to the target systems. With --clear, unpin it."""
    from accord.golden import overrides  # noqa: PLC0415
    from accord.store.engine import writing  # noqa: PLC0415

    if clear == (value is not None):
        raise InputRejected(
            "give a VALUE to pin, or --clear without one",
            hint=f"accord golden override DIR {golden_id} {field} VALUE --reason TEXT",
        )
    workspace = open_workspace(directory)
    project = workspace.project
    with writing(workspace.engine) as conn:
        if value is None:
            cleared = overrides.clear(conn, cli_actor(), project, golden_id, field, reason=reason)
        else:
            pinned = overrides.override(
                conn, cli_actor(), project, golden_id, field, value=value, reason=reason
            )
    if value is None:
        console.print(
            f"{golden_id} {field}: override of {escape(repr(cleared['was']))} cleared; "
            f"the value is now {escape(repr(cleared['value']))}"
        )
    else:
        console.print(
            f"{golden_id} {field}: pinned to {escape(repr(pinned['value']))} "
            f"(was {escape(repr(pinned['before']))})"
        )


@golden_app.command("overrides")
@reports_errors
def list_overrides(
    directory: ProjectDir,
    golden_id: Annotated[str | None, typer.Argument(help="only this customer's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the overrides; those on a customer merged away were set aside by the merge
    (another override of the field won) and wait for a steward's decision."""
    from accord.golden import overrides  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        rows = overrides.listed(conn, cli_actor(), golden_id)
    if as_json:
        print_json(rows)
        return
    console.print(
        table(
            "Overrides",
            ["customer", "field", "value", "by", "at", "reason", "state"],
            [
                [
                    row["golden_id"],
                    row["field"],
                    repr(row["value"]),
                    row["set_by"],
                    row["set_at"][:19],
                    row["reason"],
                    "in effect"
                    if row["in_effect"]
                    else f"set aside ({row['status']} into {row['merged_into']})",
                ]
                for row in rows
            ],
        )
    )
