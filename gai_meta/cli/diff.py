"""``gai-meta diff A B``: what changed between two experiments (exit 1 when anything did)."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from gai_meta.cli import command

__all__ = ["diff"]


class DiffFormat(str, enum.Enum):
    table = "table"
    json = "json"


@command("diff")
def diff(
    a: Path = typer.Argument(..., help="Experiment folder, metadata folder or model_summary.json."),
    b: Path = typer.Argument(..., help="The same kind of path for the other experiment."),
    fmt: DiffFormat = typer.Option(DiffFormat.table, "--format", help="Output format."),
    show_all: bool = typer.Option(False, "--all", help="Also list the sections that match."),
) -> None:
    """Show side by side what differs between two experiments' metadata.

    Compares totals, model, output shapes, per-type parameter groups, trainer config (without
    artifact_dir), dataloader config and losses. Exit 0 when identical, 1 when different.
    """
    from gai_meta.experiments import diff_experiments

    result = diff_experiments(a, b)
    if fmt is DiffFormat.json:
        from gai_meta.atomic import dump_json

        typer.echo(dump_json(result.to_json()).decode(), nl=False)
    else:
        from rich.console import Console

        from gai_meta.cli._views import diff_table

        console = Console(highlight=False, soft_wrap=True)
        console.print(f"A: {result.a.path}\nB: {result.b.path}")
        changed = [s for s in result.sections if s.changes]
        if changed or show_all:
            console.print(diff_table(result, show_all=show_all))
        n = sum(len(s.changes) for s in changed)
        names = ", ".join(s.name for s in result.sections)
        if result.identical:
            console.print(f"identical ({names})")
        else:
            console.print(
                f"{n} difference{'s' if n != 1 else ''} in {len(changed)} of "
                f"{len(result.sections)} sections"
            )
    if not result.identical:
        raise typer.Exit(1)
