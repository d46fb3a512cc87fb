"""``gai-meta lock`` and ``gai-meta check``: parse options, call :func:`gai_meta.check.run`.

Imports no torch: a check answered from the cache never loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from gai_meta.cli import command
from gai_meta.cli._options import ConfigOpt, InputOpt, InputShapeOpt, TrustOpt

if TYPE_CHECKING:
    from gai_meta.check import RunResult
    from gai_meta.project import Overrides

OptionalSource = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional at runtime on older Pythons
    typer.Argument(
        help="Checkpoint, YAML config or package.module:factory "
        "(default: source in [tool.gai-meta] of pyproject.toml).",
        show_default=False,
    ),
]
BaselineOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--baseline", "-b", help="Baseline file (default: architecture.lock.json in the project)."
    ),
]
DeviceOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--device", help="auto (default), meta, cpu or cuda. Never changes a count."),
]
ModelOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--model", "-m", help="Only this [[tool.gai-meta.models]] entry (repeatable)."),
]


def _overrides(
    source: str | None,
    config: Path | None,
    baseline: Path | None,
    input_shape: str | None,
    device: str | None,
    trust_checkpoint: bool,
    models: list[str] | None,
    *,
    inputs: list[str] | None = None,
    max_parameters: int | None = None,
    max_size_mb: float | None = None,
    max_flops: float | None = None,
) -> Overrides:
    from gai_meta.inputs import parse_input_shape
    from gai_meta.project import Overrides

    return Overrides(
        source=source,
        config=None if config is None else str(config),
        baseline=None if baseline is None else str(baseline),
        input_shape=parse_input_shape(input_shape) if input_shape else None,
        inputs=tuple(inputs) if inputs else None,
        device=device,
        trust_checkpoint=True if trust_checkpoint else None,
        max_parameters=max_parameters,
        max_size_mb=max_size_mb,
        max_flops=max_flops,
        models=tuple(models or ()),
    )


def _report(result: RunResult) -> None:
    from gai_meta.check import ERROR, render_outcome

    for outcome in result.outcomes:
        if outcome.status == ERROR:
            typer.echo(f"gai-meta: error: [{outcome.spec.name}] {outcome.error}", err=True)
            continue
        for line in render_outcome(outcome):
            typer.echo(line)
    failed = [o for o in result.outcomes if o.exit_code]
    if failed:
        if len(result.outcomes) > 1:
            typer.echo(
                f"gai-meta: {len(failed)} of {len(result.outcomes)} models failed: "
                + ", ".join(f"{o.spec.name} ({o.status})" for o in failed),
                err=True,
            )
        raise typer.Exit(result.exit_code)


@command("lock")
def lock_cmd(
    source: OptionalSource = None,
    config: ConfigOpt = None,
    baseline: BaselineOpt = None,
    input_shape: InputShapeOpt = None,
    inputs: InputOpt = None,
    device: DeviceOpt = None,
    trust_checkpoint: TrustOpt = False,
    model: ModelOpt = None,
) -> None:
    """Record the architecture (a stable JSON fingerprint) as the baseline to check against."""
    from gai_meta.check import run

    overrides = _overrides(
        source, config, baseline, input_shape, device, trust_checkpoint, model, inputs=inputs
    )
    _report(run(overrides, lock=True))


@command("check")
def check_cmd(
    source: OptionalSource = None,
    config: ConfigOpt = None,
    baseline: BaselineOpt = None,
    input_shape: InputShapeOpt = None,
    inputs: InputOpt = None,
    device: DeviceOpt = None,
    trust_checkpoint: TrustOpt = False,
    model: ModelOpt = None,
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite the baseline to the current architecture.")
    ] = False,
    max_parameters: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--max-parameters", min=1, help="Budget: most parameters allowed."),
    ] = None,
    max_size_mb: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--max-size-mb", min=0, help="Budget: most MB of parameters + buffers."),
    ] = None,
    max_flops: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--max-flops", min=0, help="Budget: most forward FLOPs at the inputs."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Always load the model; ignore cached results.")
    ] = False,
) -> None:
    """Compare the architecture with its baseline and budgets: exit 0 match, 1 drift, 2 bad input."""
    from gai_meta.check import run

    overrides = _overrides(
        source,
        config,
        baseline,
        input_shape,
        device,
        trust_checkpoint,
        model,
        inputs=inputs,
        max_parameters=max_parameters,
        max_size_mb=max_size_mb,
        max_flops=max_flops,
    )
    _report(run(overrides, update=update, use_cache=not no_cache))
