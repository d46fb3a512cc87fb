"""Estimates for an introspected model: settings from options and config, then the numbers.

The glue between :mod:`gai_meta.summary` (a loaded, introspected model) and the pure functions
of :mod:`gai_meta.estimates`. Torch is imported inside the functions that run estimates.

Settings resolve in this order: the explicit option, then the config (``dataloader.batch_size``,
``experiment.optimizer``, ``experiment.use_amp``), then the input (its batch dimension), then
the defaults (adamw, the model's dtype, no AMP).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from gai_meta.errors import ConfigError, ForwardError
from gai_meta.options import parse_dtype, parse_optimizer

if TYPE_CHECKING:
    from gai_meta.estimates import ComputeEstimate, MemoryEstimate
    from gai_meta.summary import Introspection

__all__ = [
    "EstimateOptions",
    "EstimateSettings",
    "Estimates",
    "estimate_batch_sizes",
    "fit_batch_size",
    "resolve_settings",
    "run_estimates",
]


@dataclasses.dataclass(frozen=True)
class EstimateOptions:
    """What the user asked for; ``None`` means "from the config, else the default"."""

    batch_size: int | None = None
    optimizer: str | None = None
    dtype: str | None = None
    amp: bool | None = None


@dataclasses.dataclass(frozen=True)
class EstimateSettings:
    """Resolved settings of one estimate (``dtype`` None = the model's own dtype)."""

    batch_size: int
    optimizer: str
    dtype: str | None
    amp: bool


@dataclasses.dataclass(frozen=True)
class Estimates:
    """Compute at the summary input and memory at the resolved batch size (None if unknown)."""

    settings: EstimateSettings | None
    compute: ComputeEstimate | None
    memory: MemoryEstimate | None
    notes: list[str]


def _config_batch_size(intro: Introspection) -> int | None:
    cfg = intro.loaded.config
    if cfg is None:
        return None
    value = cfg.section("dataloader").get("batch_size")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"dataloader.batch_size is {value!r}, expected a positive whole number such as 16",
            path=cfg.path,
        )
    return value


def _config_amp(intro: Introspection) -> bool | None:
    cfg = intro.loaded.config
    if cfg is None:
        return None
    value = cfg.section("experiment").get("use_amp")
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"experiment.use_amp is {value!r}, expected true or false", path=cfg.path)
    return value


def resolve_settings(intro: Introspection, options: EstimateOptions) -> EstimateSettings | None:
    """Settings for ``intro`` (None when no batch size can be known: no input, no option)."""
    batch = options.batch_size or _config_batch_size(intro)
    if batch is None and intro.inputs:
        batch = next((s.shape[0] for s in intro.inputs if s.shape), None)
    if batch is None:
        return None
    optimizer = options.optimizer
    if optimizer is None and intro.loaded.config is not None:
        from gai_meta.config import resolve_trainer_config

        optimizer = str(resolve_trainer_config(intro.loaded.config)["optimizer"])
    amp = options.amp if options.amp is not None else _config_amp(intro)
    return EstimateSettings(
        batch_size=batch,
        optimizer=parse_optimizer(optimizer or "adamw"),
        dtype=parse_dtype(options.dtype) if options.dtype else None,
        amp=bool(amp),
    )


def _example_inputs(intro: Introspection) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The summary's dummy inputs (``--input``/``--input-shape``/config), on the model's device."""
    from gai_meta.inputs import make_inputs
    from gai_meta.summary import _input_dtype, _model_device

    assert intro.inputs is not None
    device = _model_device(intro.model, intro.device)
    return make_inputs(intro.inputs, device, _input_dtype(intro.model))


def _can_run(intro: Introspection) -> bool:
    return bool(intro.inputs) and intro.loaded.runnable


def _memory(intro: Introspection, settings: EstimateSettings, batch: int) -> MemoryEstimate:
    from gai_meta.estimates import estimate_memory
    from gai_meta.options import resolve_dtype

    args, kwargs = _example_inputs(intro)
    return estimate_memory(
        intro.model,
        args,
        kwargs,
        batch_size=batch,
        optimizer=settings.optimizer,
        dtype=resolve_dtype(settings.dtype),
        amp=settings.amp,
    )


def run_estimates(intro: Introspection, options: EstimateOptions) -> Estimates:
    """FLOPs at the summary input and memory at the resolved batch size.

    A model the estimators cannot run (data-dependent control flow on fake tensors, say) gets
    ``None`` and a note, never a failed summary; bad options and config values still raise.
    """
    settings = resolve_settings(intro, options)
    if not _can_run(intro) or intro.probe is None:
        return Estimates(settings, None, None, [])
    from gai_meta.estimates import count_compute

    notes: list[str] = []
    compute = memory = None
    try:
        compute = count_compute(intro.model, *_example_inputs(intro))
    except ForwardError as err:
        notes.append(f"FLOPs not counted: {err.message}")
    if settings is not None:
        try:
            memory = _memory(intro, settings, settings.batch_size)
        except ForwardError as err:
            notes.append(f"memory not estimated: {err.message}")
    return Estimates(settings, compute, memory, notes)


def estimate_batch_sizes(
    intro: Introspection, options: EstimateOptions, batch_sizes: list[int]
) -> list[MemoryEstimate]:
    """One memory estimate per batch size (``options.batch_size`` is ignored)."""
    settings = resolve_settings(intro, dataclasses.replace(options, batch_size=1))
    assert settings is not None
    return [_memory(intro, settings, b) for b in batch_sizes]


def fit_batch_size(
    intro: Introspection, options: EstimateOptions, max_memory_bytes: int
) -> tuple[int, MemoryEstimate]:
    """The largest batch size whose estimated training peak fits in ``max_memory_bytes``."""
    from gai_meta.estimates import largest_batch_size
    from gai_meta.options import resolve_dtype

    settings = resolve_settings(intro, dataclasses.replace(options, batch_size=1))
    assert settings is not None
    args, kwargs = _example_inputs(intro)
    return largest_batch_size(
        intro.model,
        args,
        kwargs,
        max_memory_bytes=max_memory_bytes,
        optimizer=settings.optimizer,
        dtype=resolve_dtype(settings.dtype),
        amp=settings.amp,
    )
