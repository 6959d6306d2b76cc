"""`accord`: every command a user runs. Each parses, calls a service, and renders."""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from accord.cli import quarantine as quarantine_cli
from accord.cli import users as users_cli
from accord.cli.broker import broker_app
from accord.cli.drop import drop_app
from accord.cli.golden import golden_app
from accord.cli.linked import linked_app, summary_table
from accord.cli.mapping import map_app
from accord.cli.output import (
    ProjectDir,
    activity,
    bytes_progress,
    console,
    count_progress,
    errors,
    loads_table,
    open_workspace,
    print_json,
    reports_errors,
    stages,
    table,
)
from accord.cli.poll import poll as poll_command
from accord.cli.status import status_command
from accord.cli.sync import reconcile_command, sync_app
from accord.cli.worker import worker_app
from accord.config.loader import load_project
from accord.config.scaffold import scaffold
from accord.errors import InputRejected
from accord.govern.permissions import Role, cli_actor

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy import Connection, Engine

    from accord.config.loader import LinkedMapping
    from accord.golden.resolve import ResolveReport
    from accord.intake.load import LoadReport
    from accord.workspace import Workspace

# The store, SQLAlchemy and the services load inside the commands that use them, so that
# `accord --help` and `accord match run` (which needs none of them) start fast.

app = typer.Typer(
    name="accord",
    help="Accord: one trusted customer record, every system in step.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
users_app = typer.Typer(help="People who sign in to the web app and API.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys for connected systems and for monitoring.", no_args_is_help=True
)
match_app = typer.Typer(
    help="The matching engine on its own: run it on plain files.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
review_app = typer.Typer(
    help="The review queue: pairs the matcher is unsure of, for a steward to decide.",
    no_args_is_help=True,
)
app.add_typer(match_app, name="match")
app.add_typer(review_app, name="review")
app.add_typer(golden_app, name="golden")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(worker_app, name="worker")
app.add_typer(drop_app, name="drop")
app.command("poll")(poll_command)
app.add_typer(quarantine_cli.quarantine_app, name="quarantine")
app.add_typer(quarantine_cli.loads_app, name="loads")
app.add_typer(map_app, name="map")
app.add_typer(broker_app, name="broker")
app.add_typer(sync_app, name="sync")
app.add_typer(linked_app, name="linked")
app.command("reconcile")(reconcile_command)
app.command("status")(status_command)


def writing(engine: Engine) -> AbstractContextManager[Connection]:
    from accord.store.engine import writing as begin  # noqa: PLC0415

    return begin(engine)


@app.command()
@reports_errors
def init(
    directory: ProjectDir,
    force: Annotated[bool, typer.Option(help="overwrite existing project files")] = False,
) -> None:
    """Create a project folder with a commented accord.yaml and an example mapping."""
    for path in scaffold(directory, force=force):
        console.print(f"wrote {path}")
    console.print(f"next: edit the files, then run [bold]accord validate {directory}[/]")


@app.command()
@reports_errors
def validate(directory: ProjectDir) -> None:
    """Check accord.yaml and every mapping; list every problem with file and line."""
    project = load_project(directory)
    linked = f", {len(project.linked)} linked-record mappings" if project.linked else ""
    console.print(
        f"[green]ok[/]: {project.config.project}: {len(project.config.systems)} systems, "
        f"{len(project.mappings)} mappings{linked}, version {project.digest[:12]}"
    )


@app.command()
@reports_errors
def load(
    directory: ProjectDir,
    files: Annotated[list[Path], typer.Argument(help="CSV or JSON Lines files, gzip allowed")],
    system: Annotated[str, typer.Option("--system", "-s", help="the system they come from")],
    linked: Annotated[
        str | None,
        typer.Option(
            "--linked",
            help="the files hold the system's linked records of this kind (order, invoice, "
            "ticket, ...), read by its linked-record mapping of that kind",
        ),
    ] = None,
) -> None:
    """Bring source records in through validation and mapping; bad rows go to quarantine.
    With --linked KIND, the system's orders, invoices or tickets instead of customers."""
    workspace = open_workspace(directory)
    project = workspace.project
    if linked is None:
        project.mapping(system)
        reports = [_load_one(workspace, system, path) for path in files]
    else:
        mapping = project.linked_mapping(system, linked)
        reports = [_load_linked_one(workspace, mapping, path) for path in files]
    console.print(_load_table(reports))
    if any(r.quarantined for r in reports):
        console.print(
            "[yellow]some records were quarantined[/]: each entry names its row and reason"
        )


def _load_one(workspace: Workspace, system: str, path: Path) -> LoadReport:
    from accord.intake.load import load_file  # noqa: PLC0415

    if not path.is_file():
        raise InputRejected(f"no file at {path}")
    with bytes_progress() as progress:
        task = progress.add_task(f"{system} ← {path.name}", total=path.stat().st_size)
        return load_file(
            workspace.engine,
            workspace.project,
            system,
            path,
            actor=cli_actor().label,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


def _load_linked_one(workspace: Workspace, mapping: LinkedMapping, path: Path) -> LoadReport:
    from accord.linked.intake import load_linked_file  # noqa: PLC0415

    if not path.is_file():
        raise InputRejected(f"no file at {path}")
    with bytes_progress() as progress:
        label = f"{mapping.config.system} {mapping.config.kind}s ← {path.name}"
        task = progress.add_task(label, total=path.stat().st_size)
        return load_linked_file(
            workspace.engine,
            workspace.project,
            mapping,
            path,
            actor=cli_actor().label,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


def _drop_one(workspace: Workspace, system: str, path: Path) -> LoadReport:
    """The demo's way in for a system with a drop folder: the file is put there and the
    folder scanned, as another system's export would be."""
    import shutil  # noqa: PLC0415

    from accord.intake.drop import drop_settings, scan_once  # noqa: PLC0415

    folder, _ = drop_settings(workspace.project, system)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, folder / path.name)
    with bytes_progress() as progress:
        task = progress.add_task(f"{system} ← {folder.name}/{path.name}", total=None)
        [result] = scan_once(
            workspace.engine,
            workspace.project,
            system,
            actor=cli_actor().label,
            progress=lambda _, done, total: progress.update(task, completed=done, total=total),
        )
    if result.load is None:
        raise InputRejected(f"{path.name}: {result.error}", hint=result.next_step)
    return result.load


def _load_table(reports: list[LoadReport]) -> Any:
    return loads_table("Loaded", "file", reports, lambda r: r.source_name)


@app.command("resolve")
@reports_errors
def resolve_command(
    directory: ProjectDir,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="match only the records that changed since they were last matched, against "
            "the stored index and model (a full resolve must have run first)",
        ),
    ] = False,
) -> None:
    """Match every record and build golden records, keeping existing golden ids."""
    workspace = open_workspace(directory)
    report = _resolve_changes(workspace) if incremental else _resolve(workspace)
    console.print(_resolve_table(report))


def _resolve_changes(workspace: Workspace) -> ResolveReport:
    from accord.golden.incremental import resolve_changes  # noqa: PLC0415

    with count_progress() as progress:
        task = progress.add_task("matching changed records", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = resolve_changes(
            workspace.engine, workspace.project, actor=cli_actor().label, progress=on_progress
        )
    _warn_oversized(report)
    return report


def _resolve(workspace: Workspace) -> ResolveReport:
    from accord.golden.resolve import STAGES, resolve  # noqa: PLC0415

    with stages("resolve", STAGES) as on_stage:
        report = resolve(
            workspace.engine, workspace.project, actor=cli_actor().label, progress=on_stage
        )
    _warn_oversized(report)
    return report


def _warn_oversized(report: ResolveReport) -> None:
    for block in report.oversized_blocks:
        errors.print(
            f"[yellow]warning:[/] rule {block.rule}: {block.size:,} records share "
            f"{escape(repr(block.key))}; the block was skipped (match.max_block_size)"
        )


def _model_rows(details: dict[str, Any]) -> list[list[Any]]:
    """What the learned engine learned, in brief (nothing for the rules engine)."""
    rows: list[list[Any]] = []
    if details.get("blocking"):
        rows.append(["pairs scored", details["blocking"]["pairs"]])
        rows.append(["blocking recall (estimated)", details["blocking"]["estimated_recall"]])
    model = details.get("model")
    if model:
        expected = model["training"].get("expected_matches")
        rows.append(["matching pairs expected", None if expected is None else round(expected)])
    return rows


def _resolve_table(report: ResolveReport) -> Any:
    rows: list[list[Any]] = [
        ["records", report.records],
        ["golden records", report.golden_records],
        ["links", report.links],
        *[[f"  by {rule}", n] for rule, n in sorted(report.links_by_rule.items())],
        ["pairs held for review", report.review],
        *_model_rows(report.match_details),
        ["created", report.created],
        ["updated", report.updated],
        ["unchanged", report.unchanged],
        ["merged away", report.merged],
        ["retired", report.retired],
        ["seconds", sum(report.seconds.values())],
    ]
    return table("Resolved", ["", "count"], rows)


def _print_explanation(explanation: dict[str, Any]) -> None:
    """The match weights of a pair, comparison by comparison (a waterfall as a table)."""
    rows: list[list[Any]] = [["prior", "", "", "", f"{explanation['prior_weight']:+.2f}"]]
    rows += [
        [
            row["comparison"] + ("*" if row["correlated_group"] is not None else ""),
            row["left"],
            row["right"],
            row["level"],
            f"{row['weight'] + row['term_frequency_adjustment']:+.2f}",
        ]
        for row in explanation["comparisons"]
    ]
    rows.append(["total", "", "", "", f"{explanation['match_weight']:+.2f}"])
    console.print(table("Match weights", ["comparison", "left", "right", "level", "weight"], rows))
    if any(row["correlated_group"] is not None for row in explanation["comparisons"]):
        console.print("* correlated: only the strongest agreement of the group counts")


@match_app.command("explain")
@reports_errors
def match_explain(
    directory: ProjectDir,
    left: Annotated[str, typer.Argument(help="SYSTEM:SOURCE_ID of one record")],
    right: Annotated[str, typer.Argument(help="SYSTEM:SOURCE_ID of the other")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Why the model thinks two records are, or are not, one customer: each comparison's
    level and match weight, the prior and the total, with the last full resolve's model."""
    from accord.steward import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        found = service.explain_pair(
            conn, cli_actor(), workspace.project, _record_key(left), _record_key(right)
        )
    if as_json:
        print_json(found)
        return
    explanation = found["explanation"]
    same = found["golden_ids"][0] is not None and found["golden_ids"][0] == found["golden_ids"][1]
    console.print(
        f"[bold]{escape(left)}[/] and [bold]{escape(right)}[/]: probability "
        f"{explanation['probability']:.3f}; customers "
        f"{' and '.join(str(g) for g in found['golden_ids'])}" + (" (the same)" if same else "")
    )
    _print_explanation(explanation)
    if found["decision"]:
        console.print(f"a steward decided [bold]{found['decision']['decision']}[/]")


@match_app.command("model")
@reports_errors
def match_model(
    directory: ProjectDir,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """What the learned engine learned at the last resolve: each comparison's levels with
    m, u and match weight, the prior, and the blocking report."""
    from accord.store.stewardship import latest_model  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        model = latest_model(conn)
    if model is None:
        errors.print(
            "no learned model yet: set `match.engine: learned` and run "
            f"[bold]accord resolve {escape(str(directory))}[/]"
        )
        raise typer.Exit(1)
    if as_json:
        print_json(model)
        return
    params = model["params"]
    training = params.get("training", {})
    console.print(
        f"learned {str(model['created_at'])[:19]}: prior {params['prior']:.3g} "
        f"(about {training.get('expected_matches', 0):,.0f} matching pairs among "
        f"{training.get('possible_pairs', 0):,} possible)"
    )
    rows: list[list[Any]] = []
    for comparison in params["comparisons"]:
        levels = comparison["levels"]
        for number, label in enumerate(levels):
            if number == 0:
                continue
            rows.append(
                [
                    comparison["name"] if number == 1 else "",
                    label,
                    f"{comparison['m'][number]:.4f}",
                    f"{comparison['u'][number]:.6f}",
                    f"{comparison['weights'][number]:+.2f}",
                ]
            )
    console.print(table("Comparisons", ["comparison", "level", "m", "u", "weight"], rows))
    blocking = model["blocking"]
    if blocking:
        console.print(
            table(
                f"Blocking: {blocking['pairs']:,} pairs, estimated recall "
                f"{blocking.get('estimated_recall')}",
                ["rule", "pairs", "new pairs", "largest block"],
                [
                    [r["rule"], r["pairs"], r["new_pairs"], r["largest_block"]]
                    for r in blocking["rules"]
                ],
            )
        )


def _named_input(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise typer.BadParameter(f"{value!r}: write NAME=PATH, as in crm=crm.csv")
    return name, Path(path)


@match_app.command("run")
@reports_errors
def match_run(
    settings: Annotated[
        Path, typer.Option("--settings", help="match settings (YAML)", dir_okay=False)
    ],
    inputs: Annotated[
        list[str],
        typer.Option("--input", help="NAME=PATH of a CSV or Parquet file; repeat per source"),
    ],
    out: Annotated[Path, typer.Option("--out", help="folder for the results", file_okay=False)],
) -> None:
    """Train, score and cluster records from files; write clusters.csv, pairs.csv,
    model.json and report.json."""
    from accord.match.standalone import run  # noqa: PLC0415  (numpy loads only when needed)

    named = [_named_input(value) for value in inputs]
    with activity("match") as on_step:
        report = run(settings, named, out, progress=on_step)
    rows: list[list[Any]] = [
        *[[f"records from {name}", count] for name, count in report.inputs.items()],
        ["pairs scored", report.pairs_scored],
        ["links", report.links],
        ["for review", report.review],
        ["clusters", report.clusters],
        ["  with more than one record", report.multi_record_clusters],
        *[[f"invalid {name} values (ignored)", n] for name, n in report.invalid_values.items()],
        ["estimated blocking recall", report.blocking.get("estimated_recall")],
        ["seconds", report.seconds.get("total")],
    ]
    console.print(table("Matched", ["", "value"], rows))
    for block in report.oversized_blocks:
        errors.print(
            f"[yellow]warning:[/] blocking rule {block['rule']}: {block['size']:,} records "
            f"share {escape(repr(block['key']))}; the block was skipped (raise "
            "max_block_size to compare them)"
        )
    console.print(f"results in {out}/: clusters.csv, pairs.csv, model.json, report.json")


def _record_key(value: str) -> tuple[str, str]:
    system, sep, source_id = value.partition(":")
    if not sep or not system or not source_id:
        raise typer.BadParameter(f"{value!r}: write SYSTEM:SOURCE_ID, as in crm:003A0001")
    return system, source_id


@review_app.command("list")
@reports_errors
def review_list(
    directory: ProjectDir,
    status: Annotated[str, typer.Option(help="open, decided or withdrawn")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List pairs waiting for a decision, most likely matches first."""
    from accord.steward import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        page = service.queue(conn, cli_actor(), status=status, limit=limit, offset=offset)
    rows = [
        [
            item["id"],
            f"{item['left']['system']}:{item['left']['source_id']}",
            f"{item['right']['system']}:{item['right']['source_id']}",
            f"{item['probability']:.3f}",
            item["reason"],
        ]
        for item in page.items
    ]
    console.print(
        table(f"Review ({status}): {page.total:,}", ["id", "left", "right", "p", "why"], rows)
    )
    if page.total > offset + len(page.items):
        console.print(f"more: --offset {offset + len(page.items)}")


@review_app.command("show")
@reports_errors
def review_show(
    directory: ProjectDir,
    review_id: Annotated[int, typer.Argument(help="the id from `accord review list`")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a pair side by side with each comparison's level and match weight."""
    from accord.steward import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        item = service.review(conn, cli_actor(), review_id, workspace.project)
    if as_json:
        print_json(item)
        return
    left, right = item["records"]
    console.print(
        f"[bold]review {review_id}[/]: probability {item['probability']:.3f} "
        f"({item['reason']}), {item['status']}"
    )
    fields = sorted((left["data"] or {}).keys() | (right["data"] or {}).keys())
    console.print(
        table(
            "Records",
            [
                "",
                f"{left['system']}:{left['source_id']}",
                f"{right['system']}:{right['source_id']}",
            ],
            [
                [
                    "customer",
                    (left["golden"] or {}).get("golden_id"),
                    (right["golden"] or {}).get("golden_id"),
                ],
                *[[f, (left["data"] or {}).get(f), (right["data"] or {}).get(f)] for f in fields],
            ],
        )
    )
    if item["explanation"]:
        _print_explanation(item["explanation"])
    if item["decision"]:
        decision = item["decision"]
        console.print(
            f"decided [bold]{decision['decision']}[/] by {escape(decision['decided_by'])}"
        )


@review_app.command("decide")
@reports_errors
def review_decide(
    directory: ProjectDir,
    review_id: Annotated[int, typer.Argument(help="the id from `accord review list`")],
    decision: Annotated[str, typer.Argument(help="same or different")],
    note: Annotated[str, typer.Option(help="why, for the audit log")] = "",
    then_resolve: Annotated[
        bool, typer.Option("--resolve/--no-resolve", help="resolve now so the decision shows")
    ] = False,
) -> None:
    """Decide a queued pair: the same customer, or different customers. Every later
    resolve honours it."""
    from accord.steward import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    with writing(workspace.engine) as conn:
        decided = service.decide(conn, cli_actor(), review_id, decision, note)
    _after_decision(workspace, decided, then_resolve=then_resolve)


@review_app.command("decide-pair")
@reports_errors
def review_decide_pair(
    directory: ProjectDir,
    left: Annotated[str, typer.Argument(help="SYSTEM:SOURCE_ID of one record")],
    right: Annotated[str, typer.Argument(help="SYSTEM:SOURCE_ID of the other")],
    decision: Annotated[str, typer.Argument(help="same or different")],
    note: Annotated[str, typer.Option(help="why, for the audit log")] = "",
    then_resolve: Annotated[
        bool, typer.Option("--resolve/--no-resolve", help="resolve now so the decision shows")
    ] = False,
) -> None:
    """Decide any pair of records, queued or not. Every later resolve honours it."""
    from accord.steward import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    keys = _record_key(left), _record_key(right)
    with writing(workspace.engine) as conn:
        decided = service.decide_pair(conn, cli_actor(), *keys, decision=decision, note=note)
    _after_decision(workspace, decided, then_resolve=then_resolve)


@app.command()
@reports_errors
def unmerge(
    directory: ProjectDir,
    golden_id: Annotated[str, typer.Argument(help="the customer to split")],
    records: Annotated[
        list[str],
        typer.Option("--record", help="SYSTEM:SOURCE_ID of a member to split out; repeat"),
    ],
    note: Annotated[str, typer.Option(help="why, for the audit log")] = "",
    then_resolve: Annotated[
        bool, typer.Option("--resolve/--no-resolve", help="resolve now so the split shows")
    ] = True,
) -> None:
    """Split records out of a customer; they are never merged back with the rest."""
    from accord.steward import service  # noqa: PLC0415

    workspace = open_workspace(directory)
    keys = [_record_key(value) for value in records]
    with writing(workspace.engine) as conn:
        result = service.split(conn, cli_actor(), golden_id, keys, note)
    console.print(
        f"{len(keys)} record(s) split out of {golden_id} ({result['decisions']} decisions)"
    )
    _after_decision(workspace, then_resolve=then_resolve)


def _after_decision(
    workspace: Workspace, decided: dict[str, Any] | None = None, *, then_resolve: bool
) -> None:
    if decided is not None:
        console.print(
            f"decided [bold]{decided['decision']}[/]: {escape(':'.join(decided['left']))} and "
            f"{escape(':'.join(decided['right']))}"
        )
    if then_resolve:
        console.print(_resolve_table(_resolve(workspace)))
    else:
        console.print(f"it takes effect at the next [bold]accord resolve {workspace.root}[/]")


@app.command()
@reports_errors
def show(
    directory: ProjectDir,
    golden_id: Annotated[str, typer.Argument(help="a golden id such as C0000042")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print a golden record: each value with its lineage, and its member records."""
    from accord.golden import customers  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        customer = customers.get(conn, cli_actor(), golden_id)
    if as_json:
        print_json(customer)
        return
    if customer["status"] != "active":
        target = customer.get("merged_into")
        console.print(
            f"{golden_id} is {customer['status']}" + (f": see [bold]{target}[/]" if target else "")
        )
        return
    console.print(f"[bold]{escape(customer['display_name'])}[/]  {golden_id}")
    lineage = customer["lineage"]
    console.print(
        table(
            "Values and lineage",
            ["field", "value", "from", "rule", "observed", "others"],
            [
                [
                    field,
                    entry["value"],
                    f"{entry['system']}/{entry['source_id']}",
                    entry["rule"],
                    entry["observed_at"][:19],
                    len(entry["alternatives"]),
                ]
                for field, entry in lineage.items()
            ],
        )
    )
    console.print(
        table(
            "Member records",
            ["system", "source id", "linked by", "with", "version"],
            [
                [
                    m["system"],
                    m["source_id"],
                    m["rule"],
                    "/".join(m["evidence"].get("linked_to", [])),
                    m["version"],
                ]
                for m in customer["members"]
            ],
        )
    )
    if customer["relationships"]:
        console.print(
            table(
                "Relationships",
                ["", "customer", "name", "stated by"],
                [
                    [
                        _relationship_label(r["type"], r["direction"]),
                        r["golden_id"],
                        r["display_name"],
                        ", ".join(_stated_by(e) for e in r["evidence"][:3])
                        + (" ..." if len(r["evidence"]) > 3 else ""),
                    ]
                    for r in customer["relationships"]
                ],
            )
        )


# how a relationship was stated, when not by a reference to a record
_STATED_BY_MATCHING = {"employer": "company name", "parent_tax_id": "parent's tax id"}


def _stated_by(evidence: dict[str, str]) -> str:
    """A relationship's evidence, briefly: the record, and how it said so when not by a
    reference (a company name, a parent's tax id)."""
    record = f"{evidence['system']}:{evidence['source_id']}"
    how = _STATED_BY_MATCHING.get(evidence.get("field", ""))
    return f"{record} ({how})" if how else record


def _relationship_label(kind: str, direction: str) -> str:
    labels = {
        ("contact_of", "outgoing"): "contact of",
        ("contact_of", "incoming"): "has contact",
        ("subsidiary_of", "outgoing"): "subsidiary of",
        ("subsidiary_of", "incoming"): "parent of",
    }
    return labels.get((kind, direction), f"{kind} ({direction})")


@app.command()
@reports_errors
def search(
    directory: ProjectDir,
    text: Annotated[str, typer.Argument(help="part of a name, email, phone or id")] = "",
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """List golden customers whose name, email, phone, city or ids contain TEXT."""
    from accord.golden import customers  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn:
        page = customers.search(conn, cli_actor(), text, limit=limit)
    console.print(
        table(
            f"{page.total:,} customers",
            ["golden id", "name", "email", "city", "members"],
            [
                [
                    i["golden_id"],
                    i["display_name"],
                    i["data"].get("email"),
                    i["data"].get("city"),
                    i["member_count"],
                ]
                for i in page.items
            ],
        )
    )


@audit_app.command("verify")
@reports_errors
def audit_verify(directory: Annotated[Path, typer.Argument(file_okay=False)] = Path()) -> None:
    """Check the audit log's hash chain; name the first broken entry."""
    from accord.govern import audit  # noqa: PLC0415

    workspace = open_workspace(directory)
    with workspace.engine.connect() as conn, count_progress() as progress:
        task = progress.add_task("verifying", total=audit.count(conn))
        result = audit.verify(conn, lambda n: progress.advance(task, n))
        progress.update(task, completed=result.entries)
    if result.ok:
        console.print(f"[green]ok[/]: {result.entries:,} entries, the chain is intact")
        return
    errors.print(
        f"[bold red]broken[/]: entry {result.broken_at}: {result.reason} "
        f"({result.entries:,} entries before it verify)"
    )
    errors.print("  hint: restore the audit log from a backup and investigate who changed it")
    raise typer.Exit(1)


@users_app.command("add")
@reports_errors
def users_add(
    directory: ProjectDir,
    username: str,
    role: Annotated[Role, typer.Option(help="admin, steward, operator or viewer")] = Role.VIEWER,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a user; the password is asked for (or read from stdin), never an argument."""
    from accord.govern import users  # noqa: PLC0415

    users.check_person_role(role)  # before asking for a password
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    workspace = open_workspace(directory)
    with writing(workspace.engine) as conn:
        users.create(conn, cli_actor(), username, password, role)
    console.print(f"created {role} {username!r}")


users_app.command("list")(users_cli.list_users)
users_app.command("set-role")(users_cli.set_role)
users_app.command("deactivate")(users_cli.deactivate)
users_app.command("reactivate")(users_cli.reactivate)
users_app.command("reset-mfa")(users_cli.reset_mfa)


@keys_app.command("create")
@reports_errors
def keys_create(
    directory: ProjectDir,
    system: Annotated[
        str | None, typer.Option("--system", "-s", help="the system the key pushes for")
    ] = None,
    role: Annotated[
        Role,
        typer.Option(
            help="system: a connected system's key; monitor: reads only the health figures "
            "(/metrics)"
        ),
    ] = Role.SYSTEM,
    name: Annotated[
        str | None, typer.Option(help="the name of a monitoring key, such as prometheus")
    ] = None,
) -> None:
    """Create an API key for a system (`--system crm`), or a monitoring key (`--role
    monitor --name prometheus`); it is printed once and stored only as a hash."""
    from accord.govern import identity  # noqa: PLC0415

    workspace = open_workspace(directory)
    if role is Role.SYSTEM:
        if system is None or name is not None:
            raise InputRejected(
                "a system's key names its system: give --system, not --name",
                hint="a monitoring key: --role monitor --name prometheus",
            )
        workspace.project.mapping(system)
        holder = system
    else:
        if name is None or system is not None:
            raise InputRejected(
                f"a {role} key has a name of its own: give --name, not --system",
                hint="for example: --role monitor --name prometheus",
            )
        holder = name
    with writing(workspace.engine) as conn:
        secret = identity.create_api_key(conn, holder, created_by=cli_actor().label, role=role)
    what = holder if role is Role.SYSTEM else f"{role} {holder!r}"
    console.print(f"API key for {what} (shown once, keep it in a secrets store):")
    sys.stdout.write(secret + "\n")


@app.command()
@reports_errors
def serve(
    directory: ProjectDir,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=16,
            help="matching workers to run in this process (default ACCORD_WORKERS, 1), and "
            "with at least one, the intake scheduler (drop, poll, broker); 0 when workers run "
            "on their own (`accord worker run`)",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            help="processes answering HTTP requests (default ACCORD_WEB_PROCESSES, 1); "
            "more use more cores for the push API",
        ),
    ] = None,
) -> None:
    """Serve the web app and HTTP API, with matching workers and the intake scheduler
    beside it."""
    import uvicorn  # noqa: PLC0415

    from accord.runtime.worker import WorkerPool  # noqa: PLC0415
    from accord.web.app import PROJECT_VARIABLE, create_app  # noqa: PLC0415

    workspace = open_workspace(directory)
    workspace.project  # noqa: B018  (fail before serving when the project is invalid)
    count = workspace.settings.workers if workers is None else workers
    web = workspace.settings.web_processes if processes is None else processes
    console.print(
        f"serving at http://{host}:{port}  (health: /health, API: /api/v1, schema: /openapi.json)"
        f" with {web} process{'es' if web != 1 else ''}"
        f"; {count} matching worker{'s' if count != 1 else ''}"
        + (" and the intake scheduler" if count else "")
        + " in this one"
    )
    with WorkerPool(workspace.engine, workspace.project, count):
        if web == 1:
            uvicorn.run(create_app(workspace), host=host, port=port, log_level="warning")
        else:
            # each process builds its own app (uvicorn starts them fresh); the workers
            # and the scheduler stay in this one
            os.environ[PROJECT_VARIABLE] = str(workspace.root)
            uvicorn.run(
                "accord.web.app:app_from_environment",
                factory=True,
                workers=web,
                host=host,
                port=port,
                log_level="warning",
            )


@app.command("demo-data")
@reports_errors
def demo_data(
    out: Annotated[Path, typer.Argument(help="folder to write the files into", file_okay=False)],
    seed: Annotated[int, typer.Option(help="same seed, same data")] = 7,
    count: Annotated[int, typer.Option("--customers", min=1, help="real customers")] = 5000,
) -> None:
    """Write the demo company's source files and their ground truth."""
    from accord.demo.generator import generate  # noqa: PLC0415

    with count_progress() as progress:
        task = progress.add_task("generating customers", total=count)
        summary = generate(
            out, seed=seed, customers=count, progress=lambda n: progress.advance(task, n)
        )
    console.print(
        table(
            f"Demo data in {out}",
            ["file", "rows"],
            [list(i) for i in sorted(summary.files.items())],
        )
    )


@app.command()
@reports_errors
def demo(
    directory: Annotated[Path, typer.Argument(file_okay=False)] = Path("demo-project"),
    count: Annotated[int, typer.Option("--customers", min=10)] = 5000,
    seed: Annotated[int, typer.Option()] = 7,
    serve_app: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    sync: Annotated[
        bool,
        typer.Option(
            "--sync/--no-sync",
            help="start the billing and service desk peer services and deliver the golden "
            "records to them",
        ),
    ] = True,
    story: Annotated[
        bool,
        typer.Option(
            "--story/--no-story",
            help="with --sync: then show a CRM change reaching billing, crossing edits "
            "settled by policy and by a steward, and an outage that heals",
        ),
    ] = True,
) -> None:
    """Generate the demo company, load its four systems, resolve, report, deliver the
    golden records to the billing and service desk peers, and serve."""
    from accord.demo.generator import generate  # noqa: PLC0415
    from accord.demo.run import inputs, linked_inputs, score, write_project  # noqa: PLC0415

    write_project(directory)
    data = directory / "data"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with count_progress() as progress:
        task = progress.add_task("generating the demo company", total=count)
        generate(data, seed=seed, customers=count, progress=lambda n: progress.advance(task, n))
    timings["generate"] = time.perf_counter() - started
    workspace = open_workspace(directory)
    dropped = {s for s, c in workspace.project.config.systems.items() if c.intake.drop}
    reports = [
        _drop_one(workspace, system, path)
        if system in dropped
        else _load_one(workspace, system, path)
        for system, path in inputs(data)
    ]
    timings["load"] = sum(r.seconds for r in reports)
    report = _resolve(workspace)
    timings["resolve"] = sum(report.seconds.values())
    linked_reports = {
        (system, kind): _load_linked_one(
            workspace, workspace.project.linked_mapping(system, kind), path
        )
        for system, kind, path in linked_inputs(data)
    }
    timings["load linked records"] = sum(r.seconds for r in linked_reports.values())
    scores = score(report.assignment, data)
    console.print(
        table(
            "Records per system",
            ["system", "channel", "read", "stored", "quarantined", "flagged"],
            [
                [
                    r.system,
                    "file drop" if r.system in dropped else "accord load",
                    r.read,
                    r.new + r.changed + r.unchanged,
                    r.quarantined,
                    r.flagged,
                ]
                for r in reports
            ],
        )
    )
    console.print(
        table(
            "Demo summary",
            ["", "value"],
            [
                ["golden records", report.golden_records],
                ["links made", report.links],
                ["pairs held for review", report.review],
                ["matcher precision (pairwise)", scores.precision],
                ["matcher recall (pairwise)", scores.recall],
                ["matcher F1", scores.f1],
                *[[f"seconds: {stage}", s] for stage, s in timings.items()],
            ],
        )
    )
    _print_linked_summary(workspace, linked_reports)
    if not sync:
        _serve_demo(directory, workspace, serve_app, port)
        return
    from accord.demo.run import add_deliveries, seed_peers, start_peers  # noqa: PLC0415

    with activity("starting the billing and service desk peers") as note:
        peers = start_peers(directory)
        note("started")
    try:
        with activity("giving the peers their systems' records"):
            seeded = seed_peers(workspace.project, data, peers)
        console.print(
            "The peers hold their systems' records: "
            + ", ".join(f"{system} {count:,}" for system, count in seeded.items())
        )
        add_deliveries(directory, peers)
        workspace = open_workspace(directory)  # with its new `deliver` blocks
        started = time.perf_counter()
        totals = _deliver_all(workspace)
        console.print(
            table(
                f"Delivered to the peers ({time.perf_counter() - started:.1f} s)",
                ["target", "peer", "changes sent", "dead", "writes"],
                [[name, peers[name].url, r.sent, r.dead, r.writes] for name, r in totals.items()],
            )
        )
        if story:
            _tell_sync_story(workspace, peers, data)
        _serve_demo(directory, workspace, serve_app, port)
    finally:
        for peer in peers.values():
            peer.stop()


def _print_linked_summary(workspace: Workspace, reports: dict[tuple[str, str], LoadReport]) -> None:
    """The demo's orders, invoices and tickets: read, quarantined, stored, attached to a
    golden customer through the crosswalk, and orphans."""
    from accord.linked import service  # noqa: PLC0415

    with workspace.engine.connect() as conn:
        rows = service.summary(conn, cli_actor())
    quarantined = {key: r.quarantined for key, r in reports.items()}
    console.print(summary_table(rows, quarantined))
    if any(r["orphans"] for r in rows):
        console.print(
            f"[dim]orphans: `accord linked orphans {workspace.root}` says why, record by record[/]"
        )


def _tell_sync_story(workspace: Workspace, peers: dict[str, Any], data: Path) -> None:
    import os  # noqa: PLC0415

    from accord.demo.run import token_variable  # noqa: PLC0415
    from accord.demo.story import tell  # noqa: PLC0415

    console.print("\n[bold]Keeping the systems in step[/]")
    for scene in tell(workspace, peers, data, lambda s: os.environ[token_variable(s)]):
        console.print(table(scene.title, scene.columns, scene.rows))
        console.print(scene.note, style="dim")


def _deliver_all(workspace: Workspace) -> dict[str, Any]:
    import threading  # noqa: PLC0415

    from accord.sync.dispatch import RoundReport, run, targets  # noqa: PLC0415

    names = targets(workspace.project)
    with count_progress() as progress:
        tasks = {n: progress.add_task(f"delivering to {n}", total=None) for n in names}

        def advance(name: str, report: RoundReport) -> None:
            progress.advance(tasks[name], report.sent + report.dead)

        return run(
            workspace.engine,
            workspace.project,
            names,
            stop=threading.Event(),
            until_idle=True,
            on_round=advance,
        )


def _serve_demo(directory: Path, workspace: Workspace, serve_app: bool, port: int) -> None:
    from accord.govern import identity  # noqa: PLC0415

    if not serve_app:
        return
    password = secrets.token_urlsafe(12)
    with writing(workspace.engine) as conn:
        identity.ensure_user(conn, "admin", password, Role.ADMIN, actor=cli_actor().label)
    console.print(
        f"\n[bold]Sign in at http://127.0.0.1:{port}[/] as [bold]admin[/] "
        f"with password [bold]{password}[/] (shown once; a new one each run), then set "
        "up two-step sign-in with an authenticator app when asked"
    )
    serve(directory, port=port)
