"""``gai-meta compare EXP...``: one row per experiment, as a table, CSV or JSON."""

from __future__ import annotations

import enum

import typer

from gai_meta.cli import command

__all__ = ["compare"]


class CompareFormat(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"


@command("compare")
def compare(
    experiments: list[str] = typer.Argument(
        ..., help="Experiment folders, metadata folders or model_summary.json files; globs welcome."
    ),
    fmt: CompareFormat = typer.Option(CompareFormat.table, "--format", help="Output format."),
) -> None:
    """Compare experiments: parameters, size, input, learning rate, epochs, best val loss."""
    from gai_meta.errors import SourceError
    from gai_meta.experiments import compare_experiments, expand_experiment_paths

    paths, skipped = expand_experiment_paths(experiments)
    for path in skipped:
        typer.echo(f"gai-meta: warning: skipped {path}: holds no gai-meta metadata", err=True)
    if not paths:
        raise SourceError(
            "no experiment with metadata among the paths given; run 'gai-meta summarize' first"
        )
    rows = compare_experiments(paths)
    if fmt is CompareFormat.json:
        from gai_meta.atomic import dump_json

        doc = {"schema_version": 1, "experiments": [r.to_json() for r in rows]}
        typer.echo(dump_json(doc).decode(), nl=False)
    elif fmt is CompareFormat.csv:
        from gai_meta.cli._views import compare_csv

        typer.echo(compare_csv(rows), nl=False)
    else:
        from rich.console import Console

        from gai_meta.cli._views import compare_table

        Console(highlight=False, soft_wrap=True).print(compare_table(rows))
