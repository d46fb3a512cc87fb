"""``gai-meta lock`` and ``gai-meta check`` as library functions that return data.

:func:`lock_model` records a model's fingerprint as its baseline; :func:`check_model` compares
the model with its baseline and its budgets and returns a :class:`ModelOutcome`;
:func:`run` does either for every model a project configures and :func:`render_outcome` turns an
outcome into the lines the command prints.

A check first asks :mod:`gai_meta.check_cache`: when nothing it depends on changed since the
last passing check, it answers from the cache without importing torch (this module and the
ones it imports at the top import no torch). Only passing checks are cached.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta import check_cache
from gai_meta.budgets import BudgetViolation, check_budgets
from gai_meta.errors import GaiMetaError, UsageError
from gai_meta.fingerprint import (
    Drift,
    diff_fingerprints,
    fingerprint,
    read_baseline,
    render_drift,
    write_baseline,
)
from gai_meta.project import ModelSpec, Overrides, load_project, resolve_specs

if TYPE_CHECKING:
    from gai_meta.summary import Introspection

__all__ = [
    "ModelOutcome",
    "RunResult",
    "check_model",
    "count_flops",
    "lock_model",
    "render_outcome",
    "request_key",
    "run",
]

OK, DRIFT, BUDGET, ERROR, LOCKED = "ok", "drift", "budget", "error", "locked"


@dataclasses.dataclass(frozen=True)
class ModelOutcome:
    """What a lock or check found for one model.

    ``status`` is ``ok``, ``locked`` (exit 0), ``drift`` / ``budget`` (exit 1; a model can have
    both: ``drift`` and ``violations`` are both filled) or ``error`` (``error.exit_code``).
    """

    spec: ModelSpec
    status: str
    parameters: int | None = None
    drift: Drift | None = None
    violations: tuple[BudgetViolation, ...] = ()
    error: GaiMetaError | None = None
    cached: bool = False
    updated: bool = False  # the baseline file was (re)written

    @property
    def exit_code(self) -> int:
        if self.status == ERROR and self.error is not None:
            return self.error.exit_code
        return 1 if self.status in (DRIFT, BUDGET) else 0


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Outcomes of every model in one run; the exit code is the worst of theirs (2 > 1 > 0)."""

    outcomes: tuple[ModelOutcome, ...]

    @property
    def exit_code(self) -> int:
        return max((o.exit_code for o in self.outcomes), default=0)


def _introspect(spec: ModelSpec) -> Introspection:
    from gai_meta.inputs import parse_inputs
    from gai_meta.summary import load_and_introspect

    return load_and_introspect(
        spec.source,
        config=spec.config,
        input_shape=spec.input_shape,
        device=spec.device,
        trust_checkpoint=spec.trust_checkpoint,
        inputs=parse_inputs(None, spec.inputs),
    )


def count_flops(intro: Introspection) -> int:
    """Forward FLOPs of the introspected model at its input, through :mod:`gai_meta.estimates`.

    Raises a UsageError (exit 2) when this gai-meta has no compute estimates or no input is known.
    """
    compute = getattr(intro, "compute", None)
    if compute is not None and isinstance(getattr(compute, "flops", None), int):
        return int(compute.flops)
    import importlib

    try:
        estimates = importlib.import_module("gai_meta.estimates")
    except ModuleNotFoundError as err:
        if err.name != "gai_meta.estimates":
            raise
        raise UsageError(
            "max_flops: this gai-meta has no compute estimates (gai_meta.estimates) to count "
            "FLOPs with; upgrade gai-meta or remove max_flops"
        ) from None
    if intro.input_shape is None or intro.probe is None:
        raise UsageError(
            "max_flops: FLOPs need an input; set input_shape in [tool.gai-meta] or pass --input-shape"
        )
    import torch

    dtype = next((p.dtype for p in intro.model.parameters() if p.is_floating_point()), None)
    x = torch.zeros(intro.input_shape, dtype=dtype or torch.float32, device=intro.device)
    return int(estimates.count_compute(intro.model, (x,)).flops)


def request_key(spec: ModelSpec) -> str:
    """The cache key of checking ``spec`` (see :func:`gai_meta.check_cache.request_key`)."""
    return check_cache.request_key({"command": "check", "spec": spec.to_json()})


def _stamps(paths: Sequence[Path]) -> list[dict[str, Any] | None]:
    return [check_cache.stamp(p) for p in dict.fromkeys(p.resolve() for p in paths)]


def check_model(spec: ModelSpec, *, update: bool = False, use_cache: bool = True) -> ModelOutcome:
    """Compare one model with its baseline and budgets; with ``update``, rewrite the baseline.

    GaiMetaErrors (bad input) propagate; the caller decides how to report them.
    """
    key = request_key(spec)
    if use_cache and not update:
        hit = check_cache.lookup(key)
        if hit is not None and isinstance(hit.get("parameters"), int):
            return ModelOutcome(spec, OK, parameters=hit["parameters"], cached=True)
    # Input files are stamped before the model is read, so an edit during the check is a miss.
    inputs = _stamps(spec.input_files())
    baseline: dict[str, Any] | None = None
    if update:
        try:
            baseline = read_baseline(spec.baseline)
        except GaiMetaError:
            baseline = None  # --update replaces a missing or unreadable baseline
    else:
        baseline = read_baseline(spec.baseline)
    intro = _introspect(spec)
    fp = fingerprint(intro)
    drift = diff_fingerprints(baseline, fp) if baseline is not None else None
    written = False
    if update and baseline != fp:
        write_baseline(spec.baseline, fp)
        written = True
    violations = tuple(check_budgets(fp, spec.budgets, flops=lambda: count_flops(intro)))
    parameters = int(fp["totals"]["parameters"])
    if violations:
        status = BUDGET
    elif drift is not None and drift.has_drift and not update:
        status = DRIFT
    else:
        status = OK
    if status == OK and use_cache:
        files = [spec.baseline, *check_cache.own_files(), *_model_files(intro, spec)]
        check_cache.store(key, [*inputs, *_stamps(files)], {"parameters": parameters})
    return ModelOutcome(
        spec,
        status,
        parameters=parameters,
        drift=drift if drift is not None and drift.has_drift else None,
        violations=violations,
        updated=written,
    )


def _model_files(intro: Introspection, spec: ModelSpec) -> list[Path]:
    import sys

    classes = {type(m) for m in intro.model.modules()}
    files = check_cache.class_files(classes)
    if ":" in spec.source and not Path(spec.source).exists():
        module = sys.modules.get(spec.source.partition(":")[0])
        path = getattr(module, "__file__", None)
        if path:
            files.append(Path(path))
    return files


def lock_model(spec: ModelSpec) -> ModelOutcome:
    """Record the model's fingerprint as its baseline (budgets are judged by ``check`` only)."""
    intro = _introspect(spec)
    fp = fingerprint(intro)
    try:
        old: dict[str, Any] | None = read_baseline(spec.baseline)
    except GaiMetaError:
        old = None
    written = old != fp
    if written:
        write_baseline(spec.baseline, fp)
    drift = diff_fingerprints(old, fp) if old is not None else None
    return ModelOutcome(
        spec,
        LOCKED,
        parameters=int(fp["totals"]["parameters"]),
        drift=drift if drift is not None and drift.has_drift else None,
        updated=written,
    )


def run(
    overrides: Overrides,
    *,
    lock: bool = False,
    update: bool = False,
    use_cache: bool = True,
    cwd: Path | None = None,
) -> RunResult:
    """Lock or check every model the command line and ``[tool.gai-meta]`` configure.

    Errors in the configuration itself raise (exit 2 before any model is read); an error in one
    model is recorded in its outcome and the other models are still checked.

    Example::

        result = run(Overrides(source="model.yaml"))
        result.exit_code  # 0 when the architecture matches architecture.lock.json
    """
    project = load_project(cwd)
    specs = resolve_specs(project, overrides, cwd=cwd)
    outcomes = []
    for spec in specs:
        try:
            if lock:
                outcome = lock_model(spec)
            else:
                outcome = check_model(spec, update=update, use_cache=use_cache)
        except GaiMetaError as err:
            if len(specs) == 1:
                raise
            outcome = ModelOutcome(spec, ERROR, error=err)
        outcomes.append(outcome)
    return RunResult(tuple(outcomes))


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def render_outcome(outcome: ModelOutcome) -> list[str]:
    """The lines a command prints for ``outcome`` (errors excepted: they go to stderr)."""
    spec = outcome.spec
    base = _display(spec.baseline)
    n = f"{outcome.parameters:,} parameters" if outcome.parameters is not None else ""
    if outcome.status == LOCKED:
        if not outcome.updated:
            return [f"{spec.name}: {base} is up to date ({n})"]
        lines: list[str] = [f"{spec.name}: wrote {base} ({n})"]
        if outcome.drift is not None:
            lines += ["  " + line for line in render_drift(outcome.drift)]
        return lines
    if outcome.status == ERROR:
        return [f"{spec.name}: error: {outcome.error}"]
    lines = []
    if outcome.status == OK:
        if outcome.updated:
            lines.append(f"{spec.name}: updated {base} ({n})")
            if outcome.drift is not None:
                lines += ["  " + line for line in render_drift(outcome.drift)]
        else:
            lines.append(
                f"{spec.name}: ok, matches {base} ({n}{'; cached' if outcome.cached else ''})"
            )
        return lines
    if outcome.drift is not None and not outcome.updated:
        lines.append(f"{spec.name}: architecture differs from {base}")
        lines += ["  " + line for line in render_drift(outcome.drift)]
        lines.append(
            "  if this change is intended, run `gai-meta check --update` (or `gai-meta lock`) "
            "and commit the baseline"
        )
    elif outcome.updated:
        lines.append(f"{spec.name}: updated {base} ({n})")
    for v in outcome.violations:
        lines.append(f"{spec.name}: {v.message()}")
    return lines
