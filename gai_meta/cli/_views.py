"""Terminal views of experiment records: tables, a text loss curve, CSV. No computing here."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gai_meta.history import EpochRecord, best_epoch

if TYPE_CHECKING:
    from rich.table import Table

    from gai_meta.experiments import CompareRow, ExperimentDiff

__all__ = [
    "compare_csv",
    "compare_table",
    "diff_table",
    "history_table",
    "loss_curve",
]

_BARS = "▁▂▃▄▅▆▇█"
_COMPARE_COLUMNS = (
    ("name", "experiment"),
    ("total_parameters", "params"),
    ("parameter_size_mb", "MB"),
    ("input_shape", "input"),
    ("learning_rate", "lr"),
    ("epochs", "epochs"),
    ("best_val_loss", "best val"),
    ("best_epoch", "at epoch"),
)


def fmt(value: Any) -> str:
    """A value for a table cell: ``-`` for null, compact floats, shapes as ``1x3x640x640``.

    Text is escaped so that a value such as ``[red]`` is shown, not read as rich markup.
    """
    from rich.markup import escape

    return escape(_plain(value))


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return "x".join(str(v) for v in value)
    return str(value)


def loss_curve(epochs: Sequence[EpochRecord], width: int = 60) -> list[str]:
    """A two-line sparkline of train and val loss on one shared scale, plus a scale line.

    More epochs than ``width`` are averaged into ``width`` buckets; a missing loss is a blank.
    Returns ``[]`` when there is no finite loss at all.
    """
    series = {
        "train": [e.train_loss for e in epochs],
        "val": [e.val_loss for e in epochs],
    }
    values = [v for s in series.values() for v in s if v is not None]
    if not values:
        return []
    low, high = min(values), max(values)
    lines = []
    for label, raw in series.items():
        if all(v is None for v in raw):
            continue
        lines.append(f"{label:<6}" + "".join(_bar(v, low, high) for v in _buckets(raw, width)))
    span = f"epochs {epochs[0].epoch}..{epochs[-1].epoch}"
    lines.append(f"{'':<6}scale {low:.4g} (▁) .. {high:.4g} (█), {span}")
    return lines


def _buckets(values: Sequence[float | None], width: int) -> list[float | None]:
    if len(values) <= width:
        return list(values)
    out: list[float | None] = []
    for i in range(width):
        chunk = values[i * len(values) // width : (i + 1) * len(values) // width]
        finite = [v for v in chunk if v is not None]
        out.append(math.fsum(finite) / len(finite) if finite else None)
    return out


def _bar(value: float | None, low: float, high: float) -> str:
    if value is None:
        return " "
    if high == low:
        return _BARS[0]
    return _BARS[round((value - low) / (high - low) * (len(_BARS) - 1))]


def history_table(epochs: Sequence[EpochRecord], *, limit: int = 20) -> Table:
    """Epoch, losses and (when any) the first COCO metric; the best val loss is marked."""
    from rich.table import Table

    best = best_epoch(epochs)
    coco_key = next((next(iter(e.coco_metrics)) for e in epochs if e.coco_metrics), None)
    table = Table(box=None, pad_edge=False)
    table.add_column("epoch", justify="right")
    table.add_column("train_loss", justify="right")
    table.add_column("val_loss", justify="right")
    if coco_key is not None:
        table.add_column(f"coco {fmt(coco_key)}", justify="right")
    table.add_column("")
    shown: list[EpochRecord | None] = list(epochs)
    if len(epochs) > limit:
        # first and last epochs, and the best one wherever it is, with gaps marked
        half = limit // 2
        keep = set(range(half)) | set(range(len(epochs) - half, len(epochs)))
        if best is not None:
            keep.add(next(i for i, e in enumerate(epochs) if e is best))
        shown = []
        for i in sorted(keep):
            if shown and i - 1 not in keep:
                shown.append(None)
            shown.append(epochs[i])
    for e in shown:
        if e is None:
            table.add_row("…", "", "", *([""] if coco_key else []), "")
            continue
        cells = [str(e.epoch), fmt(e.train_loss), fmt(e.val_loss)]
        if coco_key is not None:
            cells.append(fmt(e.coco_metrics.get(coco_key)))
        cells.append("best val" if best is not None and e.epoch == best.epoch else "")
        table.add_row(*cells)
    return table


def compare_table(rows: Sequence[CompareRow]) -> Table:
    """One row per experiment; ``epochs`` shows recorded/configured when both are known."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for key, title in _COMPARE_COLUMNS:
        table.add_column(
            title,
            justify="left" if key in ("name", "input_shape") else "right",
            overflow="fold",  # never cut a name or a number short
        )
    for row in rows:
        cells = []
        for key, _ in _COMPARE_COLUMNS:
            value = getattr(row, key)
            if key == "epochs" and row.num_epochs is not None:
                cells.append(f"{fmt(value)}/{row.num_epochs}")
            else:
                cells.append(fmt(value))
        table.add_row(*cells)
    return table


def compare_csv(rows: Sequence[CompareRow]) -> str:
    """CSV with a header row; every CompareRow field, shapes written as ``1x3x640x640``."""
    buffer = io.StringIO()
    if not rows:
        return ""
    names = list(rows[0].to_json())
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        data = row.to_json()
        writer.writerow(["" if data[n] is None else fmt_csv(data[n]) for n in names])
    return buffer.getvalue()


def fmt_csv(value: Any) -> str:
    """A CSV cell: exact numbers (no thousands separators), shapes as ``1x3x640x640``."""
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return "x".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def diff_table(diff: ExperimentDiff, *, show_all: bool = False) -> Table:
    """Changed values side by side, one row per key, under a heading row per section."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column(f"A: {fmt(diff.a.name)}", overflow="fold")
    table.add_column(f"B: {fmt(diff.b.name)}", overflow="fold")
    for section in diff.sections:
        if not section.changes:
            if show_all:
                table.add_row(
                    f"[bold]{section.name}[/]", f"({section.compared} values identical)", ""
                )
            continue
        table.add_row(f"[bold]{section.name}[/]", "", "")
        for change in section.changes:
            table.add_row(
                f"  {fmt(change.key)}",
                fmt(change.a) if change.in_a else "(absent)",
                fmt(change.b) if change.in_b else "(absent)",
            )
    return table
