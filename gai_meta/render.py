"""Human-readable views (rich tables, CSV) of the records; computing lives elsewhere."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gai_meta.accounting import Group

__all__ = ["console", "groups_csv", "groups_json", "groups_table", "summary_view"]


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _n(value: int) -> str:
    return f"{value:,}"


def _shape(shapes: Sequence[Sequence[int]]) -> str:
    if not shapes:
        return "-"
    text = ", ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes[:3])
    return text + (f" (+{len(shapes) - 3})" if len(shapes) > 3 else "")


def _estimate_lines(summary: Mapping[str, Any]) -> list[str]:
    """FLOPs and memory estimate lines of the summary view (none when not estimated)."""
    lines = []
    compute = summary.get("compute")
    if compute:
        uncounted = compute.get("uncounted") or []
        extra = f" (+ {len(uncounted)} ops without a formula)" if uncounted else ""
        lines.append(f"Forward FLOPs:            {compute['flops'] / 1e9:,.2f} GFLOPs{extra}")
    mem = summary.get("memory_estimate")
    if mem:
        amp = f"+{mem['amp_dtype']} amp" if mem.get("amp") else ""
        lines.append(
            f"Memory, batch {mem['batch_size']}:".ljust(26)
            + f"train {mem['training_peak_mb']:,.2f} MB, infer {mem['inference_peak_mb']:,.2f} MB"
            + f" ({mem['optimizer']}, {mem['dtype']}{amp})"
        )
    return lines


def summary_view(
    summary: Mapping[str, Any], written: Mapping[str, Path], *, depth: int
) -> list[Any]:
    """Renderables for ``gai-meta summarize``: the layer table, totals and where files went."""
    from rich.table import Table

    table = Table(
        title=f"{summary['model_architecture']} (layers to depth {depth})", title_justify="left"
    )
    table.add_column("Layer", no_wrap=True)
    table.add_column("Type")
    table.add_column("Output shape")
    table.add_column("Params", justify="right")
    owned = [(d["name"], d["parameters"]) for d in summary["layer_details"]]

    def recursive(name: str) -> int:
        return sum(n for owner, n in owned if owner == name or owner.startswith(name + "."))

    for layer in summary["layers"]:
        if layer["depth"] > depth or layer["depth"] == 0:
            continue
        indent = "  " * (layer["depth"] - 1)
        name = layer["name"] + (f" (call {layer['call']})" if layer["call"] > 1 else "")
        params = recursive(layer["name"]) if layer["call"] == 1 else 0
        table.add_row(
            indent + name,
            layer["type"],
            _shape(layer["output_shapes"]),
            _n(params) if params else "-",
        )
    lines = [
        f"Total parameters:         {_n(summary['total_parameters'])}",
        f"Trainable parameters:     {_n(summary['trainable_parameters'])}",
        f"Non-trainable parameters: {_n(summary['non_trainable_parameters'])}",
        f"Parameter size:           {summary['parameter_size_mb']:.2f} MB",
        f"Buffers:                  {_n(summary['total_buffers'])} ({summary['buffer_size_mb']:.2f} MB)",
        f"Input shape:              {summary['input_shape']}"
        if summary.get("input_shape") or not summary.get("inputs")
        else "Inputs:                   "
        + ", ".join(
            f"{i['name'] or 'arg'}={list(i['shape'])}:{i['dtype']}" for i in summary["inputs"]
        ),
        f"Output shapes:            {summary['output_shapes']}",
    ]
    lines += _estimate_lines(summary)
    lines += [f"Note: {note}" for note in summary.get("notes", [])]
    if written:
        folder = next(iter(written.values())).parent
        lines.append(f"Wrote {len(written)} files to {folder}/: {', '.join(written)}")
    out: list[Any] = []
    if summary["layers"]:
        out.append(table)
    out.append("\n".join(lines))
    return out


def groups_json(by: str, total: int, groups: Iterable[Group]) -> dict[str, Any]:
    return {
        "group_by": by,
        "total_parameters": total,
        "groups": [
            {
                "name": g.name,
                "count": g.count,
                "tensors": g.tensors,
                "total_params": g.total_params,
                "trainable_params": g.trainable_params,
                "bytes": g.bytes,
            }
            for g in groups
        ],
    }


def groups_csv(groups: Iterable[Group]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "count", "tensors", "total_params", "trainable_params", "bytes"])
    for g in groups:
        writer.writerow([g.name, g.count, g.tensors, g.total_params, g.trainable_params, g.bytes])
    return buf.getvalue()


def groups_table(by: str, total: int, groups: Sequence[Group]) -> Any:
    from rich.table import Table

    table = Table(title=f"Parameters by {by}", title_justify="left")
    for col, justify in (
        ("Group", "left"),
        ("Modules", "right"),
        ("Params", "right"),
        ("Trainable", "right"),
        ("Bytes", "right"),
        ("%", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for g in groups:
        share = 100.0 * g.total_params / total if total else 0.0
        table.add_row(
            g.name or "(root)",
            _n(g.count),
            _n(g.total_params),
            _n(g.trainable_params),
            _n(g.bytes),
            f"{share:.1f}",
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        _n(total),
        _n(sum(g.trainable_params for g in groups)),
        _n(sum(g.bytes for g in groups)),
        "100.0",
    )
    return table
