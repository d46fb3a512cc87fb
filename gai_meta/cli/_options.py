"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

Source = Annotated[
    str,
    typer.Argument(
        help="Checkpoint (.pt/.pth/.ckpt...), GAI-YOLOv12 YAML config, or package.module:factory.",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional at runtime on older Pythons
    typer.Option(
        "--config",
        "-c",
        help="YAML config or package.module:factory that builds the model (weights must fit).",
    ),
]
InputShapeOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--input-shape",
        help="Dummy input shape, e.g. 1,3,640,640 (default: from the config's model.input_size).",
    ),
]
InputOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--input",
        "-i",
        help="Dummy input [NAME=]D0,D1,...[:DTYPE], repeatable: NAME= makes it a keyword "
        "argument, e.g. input_ids=1,16:int64 (DTYPE default: the model's float dtype).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (cpu up to 256 MiB of weights, else meta), meta, cpu, cuda[:N]. "
        "Never changes a count.",
    ),
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Allow formats that run code when loaded (pickled modules, TorchScript, .pt2).",
    ),
]
# Settings of the memory estimate, shared by `summarize` and `estimate`.
OptimizerOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--optimizer", help="adamw, adam or sgd (momentum 0.9) (default: the config's, else adamw)."
    ),
]
DtypeOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--dtype",
        help="Train in this dtype: fp32, bf16, fp16 (with --amp: the autocast dtype, default bf16).",
    ),
]
AmpOpt = Annotated[
    Optional[bool],  # noqa: UP045
    typer.Option(
        "--amp/--no-amp",
        help="Mixed precision (torch.autocast) for forward and loss (default: experiment.use_amp).",
        show_default=False,
    ),
]


def estimate_options(
    batch_size: str | None, optimizer: str | None, dtype: str | None, amp: bool | None
) -> Any:
    """Parse the shared estimate options (one batch size) into ``EstimateOptions``."""
    from gai_meta.estimate_report import EstimateOptions
    from gai_meta.options import parse_batch_size, parse_dtype, parse_optimizer

    return EstimateOptions(
        batch_size=parse_batch_size(batch_size) if batch_size is not None else None,
        optimizer=parse_optimizer(optimizer) if optimizer is not None else None,
        dtype=parse_dtype(dtype) if dtype is not None else None,
        amp=amp,
    )
