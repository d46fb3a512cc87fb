"""``gai-meta estimate``: training and inference memory across batch sizes; the largest that fits."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from gai_meta.cli import command
from gai_meta.cli._options import (
    AmpOpt,
    ConfigOpt,
    DtypeOpt,
    InputOpt,
    InputShapeOpt,
    OptimizerOpt,
    Source,
    TrustOpt,
    estimate_options,
)
from gai_meta.errors import UsageError

BatchSizeOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--batch-size",
        "-b",
        help="Batch size(s) of the memory estimate, e.g. 16 or 1,8,32 "
        "(default: the config's dataloader.batch_size, else the input's batch dimension).",
    ),
]


def _row(est: Any) -> dict[str, Any]:
    row: dict[str, Any] = est.to_json()
    return row


@command("estimate")
def estimate_cmd(
    source: Source,
    config: ConfigOpt = None,
    batch_size: BatchSizeOpt = None,
    max_memory: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--max-memory", help="Also report the largest batch size whose training peak fits."
        ),
    ] = None,
    optimizer: OptimizerOpt = None,
    dtype: DtypeOpt = None,
    amp: AmpOpt = None,
    input_shape: InputShapeOpt = None,
    inputs: InputOpt = None,
    trust_checkpoint: TrustOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Estimated memory of one training step and one inference forward per batch size."""
    from gai_meta.inputs import parse_inputs
    from gai_meta.options import parse_batch_sizes, parse_memory

    specs = parse_inputs(input_shape, inputs or ())
    sizes = parse_batch_sizes(batch_size) if batch_size is not None else None
    limit = parse_memory(max_memory) if max_memory is not None else None
    options = estimate_options(None, optimizer, dtype, amp)

    from gai_meta.estimate_report import (
        estimate_batch_sizes,
        fit_batch_size,
        resolve_settings,
    )
    from gai_meta.summary import load_and_introspect

    intro = load_and_introspect(
        source,
        config=config,
        inputs=specs,
        device="meta",
        trust_checkpoint=trust_checkpoint,
        run_forward=False,
    )
    if not intro.inputs or not intro.loaded.runnable:
        raise UsageError(
            f"{source}: no input is known for this model (or it cannot run); pass "
            "--input-shape 1,3,640,640 or --input NAME=D0,D1,...[:DTYPE]"
        )
    if sizes is None:
        settings = resolve_settings(intro, options)
        sizes = [settings.batch_size] if settings is not None else [1]
    rows = estimate_batch_sizes(intro, options, sizes)
    fit = fit_batch_size(intro, options, limit) if limit is not None else None
    if as_json:
        from gai_meta.atomic import dump_json

        doc: dict[str, Any] = {"estimates": [_row(r) for r in rows]}
        if fit is not None:
            doc["max_memory_bytes"] = limit
            doc["largest_batch_size"] = fit[0]
            doc["largest_batch_estimate"] = _row(fit[1])
        sys.stdout.write(dump_json(doc).decode())
        return
    from gai_meta.render import console

    con = console()
    for item in _view(rows, fit=fit, max_memory=max_memory):
        con.print(item)


def _view(rows: list[Any], *, fit: tuple[int, Any] | None, max_memory: str | None) -> list[Any]:
    from rich.table import Table

    first = rows[0]
    precision = first.dtype + (f", autocast {first.amp_dtype}" if first.amp else "")
    table = Table(
        title=f"Estimated memory in MB ({first.optimizer}, {precision})", title_justify="left"
    )
    for col in ("Batch", "Input", "Saved", "Weights", "Infer", "Train", "Tensors"):
        table.add_column(col, justify="right")
    for r in rows:
        fixed = r.parameters_mb + r.buffers_mb + r.gradients_mb + r.optimizer_state_mb
        table.add_row(
            str(r.batch_size),
            f"{r.input_mb:,.2f}",
            f"{r.activations_mb:,.2f}",
            f"{fixed:,.2f}",
            f"{r.inference_peak_mb:,.2f}",
            f"{r.training_peak_mb:,.2f}",
            f"{r.training_tensor_peak_mb:,.2f}",
        )
    items: list[Any] = [
        table,
        "Saved: activations kept for backward. Weights: parameters, buffers,",
        "gradients, optimizer state. Infer/Train: peak resident memory of a CPU",
        "process (glibc) in a no-grad forward / a training step. Tensors: the",
        "training step's live tensors alone.",
    ]
    if fit is not None:
        batch, est = fit
        if batch == 0:
            items.append(
                f"Not even batch size 1 fits in {max_memory}: "
                f"its training peak is {est.training_peak_mb:,.2f} MB."
            )
        else:
            items.append(
                f"Largest batch size that fits in {max_memory}: {batch} "
                f"(training peak {est.training_peak_mb:,.2f} MB)"
            )
    return items
