"""``gai-meta summarize`` and ``gai-meta params``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from gai_meta.cli import command
from gai_meta.cli._options import (
    AmpOpt,
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
    InputOpt,
    InputShapeOpt,
    OptimizerOpt,
    Source,
    TrustOpt,
    estimate_options,
)
from gai_meta.errors import UsageError


@command("summarize")
def summarize_cmd(
    source: Source,
    config: ConfigOpt = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", "-o", help="Experiment folder; files go to OUT/metadata/."),
    ] = None,
    input_shape: InputShapeOpt = None,
    inputs: InputOpt = None,
    device: DeviceOpt = "auto",
    trust_checkpoint: TrustOpt = False,
    depth: Annotated[
        int, typer.Option("--depth", help="Deepest layer level shown in the table.")
    ] = 3,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print model_summary.json to stdout.")
    ] = False,
    batch_size: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--batch-size",
            "-b",
            help="Batch size of memory_estimate (default: the config's dataloader.batch_size, "
            "else the input's batch dimension).",
        ),
    ] = None,
    optimizer: OptimizerOpt = None,
    dtype: DtypeOpt = None,
    amp: AmpOpt = None,
    with_estimates: Annotated[
        bool,
        typer.Option(
            "--estimates/--no-estimates",
            help="Compute FLOPs and memory estimates (the fake-tensor replay costs ~1-2 s).",
        ),
    ] = True,
) -> None:
    """Write the metadata files of a model and print a readable summary."""
    from gai_meta.inputs import parse_inputs
    from gai_meta.summary import summarize

    estimates = estimate_options(batch_size, optimizer, dtype, amp)

    result = summarize(
        source,
        config=config,
        out=out,
        inputs=parse_inputs(input_shape, inputs or ()),
        device=device,
        trust_checkpoint=trust_checkpoint,
        estimates=estimates,
        with_estimates=with_estimates,
    )
    summary = result.documents["model_summary.json"]
    if as_json:
        from gai_meta.atomic import dump_json

        sys.stdout.write(dump_json(summary).decode())
    elif not quiet:
        from gai_meta.render import console, summary_view

        con = console()
        for item in summary_view(summary, result.written, depth=depth):
            con.print(item)


@command("params")
def params_cmd(
    source: Source,
    config: ConfigOpt = None,
    group_by: Annotated[
        str, typer.Option("--group-by", "-g", help="type, layer, depth, dtype or trainable.")
    ] = "type",
    depth: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--depth", help="Name components kept for layer/depth groups (depth: 1)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    trust_checkpoint: TrustOpt = False,
) -> None:
    """Parameter counts and bytes grouped by module type, layer, depth, dtype or trainability."""
    from gai_meta.accounting import GROUP_KEYS

    if group_by not in GROUP_KEYS:
        raise UsageError(f"--group-by '{group_by}' is not one of {', '.join(GROUP_KEYS)}")
    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"--format '{fmt}' is not one of table, json, csv")
    from gai_meta.accounting import group
    from gai_meta.summary import load_and_introspect

    intro = load_and_introspect(
        source, config=config, device="meta", trust_checkpoint=trust_checkpoint, run_forward=False
    )
    acc = intro.account
    groups = group(acc, group_by, depth=depth)
    from gai_meta import render

    if fmt == "json":
        from gai_meta.atomic import dump_json

        sys.stdout.write(dump_json(render.groups_json(group_by, acc.total, groups)).decode())
    elif fmt == "csv":
        sys.stdout.write(render.groups_csv(groups))
    else:
        render.console().print(render.groups_table(group_by, acc.total, groups))
