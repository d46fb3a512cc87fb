"""``gai-meta history PATH``: rebuild training_history.json from an experiment folder."""

from __future__ import annotations

from pathlib import Path

import typer

from gai_meta.cli import command

__all__ = ["history"]


@command("history")
def history(
    path: Path = typer.Argument(
        ..., help="Experiment folder (or its checkpoints/ folder) written by a training run."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write DIR/metadata/training_history.json instead of <experiment>/metadata/.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the history as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but warnings."),
) -> None:
    """Read the per-epoch losses of an experiment and write training_history.json.

    Source: checkpoints/training_metrics.json when present, else the epoch fields of each
    checkpoints/epoch_*.pt (read without loading the weights).
    """
    from gai_meta.atomic import dump_json
    from gai_meta.history import HISTORY_FILE, history_entries, read_history, write_history

    hist = read_history(path)
    for ckpt, why in hist.skipped:
        typer.echo(f"gai-meta: warning: skipped {ckpt}: {why}", err=True)
    target = write_history(hist, None if out is None else out / "metadata" / HISTORY_FILE)
    if as_json:
        typer.echo(dump_json(history_entries(hist.epochs)).decode(), nl=False)
        return
    if quiet:
        return
    from rich.console import Console

    from gai_meta.cli._views import history_table, loss_curve

    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"Training history of {hist.experiment_dir} ({len(hist.epochs)} epochs, from {hist.source})"
    )
    if hist.epochs:
        console.print(history_table(hist.epochs))
        for line in loss_curve(hist.epochs):
            console.print(line)
    console.print(f"wrote {target}")
