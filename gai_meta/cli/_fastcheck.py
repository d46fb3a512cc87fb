"""The instant path of ``gai-meta check``: answer a cache hit before Typer parses anything.

Typer coerces every option through pydantic, whose import alone costs more than the whole
cached check (~0.2 s of ~0.3 s measured by ``benchmarks/bench_check.py``). So :func:`answer`
parses the plain forms of ``gai-meta check`` options itself and answers only when every model is
a cache hit. Anything else -- another command, ``--help``, ``--update``, ``--no-cache``, an
unknown or malformed option, a configuration error, a single miss -- returns ``None`` and the
normal Typer command runs, producing the same output and exit code (or the proper error).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["answer"]

# option -> (Overrides field, parser); parsers raise ValueError on a malformed value
_VALUED = {
    "--config": "config",
    "-c": "config",
    "--baseline": "baseline",
    "-b": "baseline",
    "--input-shape": "input_shape",
    "--device": "device",
    "--model": "models",
    "-m": "models",
    "--max-parameters": "max_parameters",
    "--max-size-mb": "max_size_mb",
    "--max-flops": "max_flops",
}


def _parse(args: Sequence[str]) -> dict[str, object] | None:
    values: dict[str, object] = {}
    models: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--trust-checkpoint":
            values["trust_checkpoint"] = True
            i += 1
            continue
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUED:
            if eq:
                value, i = inline, i + 1
            elif i + 1 < len(args):
                value, i = args[i + 1], i + 2
            else:
                return None
            field = _VALUED[name]
            if field == "models":
                models.append(value)
            elif field in values:
                return None  # repeated: let Typer decide
            else:
                values[field] = value
            continue
        if arg.startswith("-") or "source" in values:
            return None  # --update, --no-cache, --help, unknown options, a second argument
        values["source"] = arg
        i += 1
    values["models"] = tuple(models)
    return values


def _overrides(values: dict[str, object]) -> object | None:
    from gai_meta.inputs import parse_input_shape
    from gai_meta.project import Overrides

    try:
        shape = values.get("input_shape")
        max_parameters = values.get("max_parameters")
        max_size_mb = values.get("max_size_mb")
        max_flops = values.get("max_flops")
        overrides = Overrides(
            source=_str(values.get("source")),
            config=_str(values.get("config")),
            baseline=_str(values.get("baseline")),
            input_shape=parse_input_shape(str(shape)) if shape else None,
            device=_str(values.get("device")),
            trust_checkpoint=True if values.get("trust_checkpoint") else None,
            max_parameters=None if max_parameters is None else int(str(max_parameters)),
            max_size_mb=None if max_size_mb is None else float(str(max_size_mb)),
            max_flops=None if max_flops is None else float(str(max_flops)),
            models=tuple(str(m) for m in values["models"]),  # type: ignore[attr-defined]
        )
    except Exception:  # malformed values: the Typer command reports them properly
        return None
    if (overrides.max_parameters is not None and overrides.max_parameters < 1) or any(
        v is not None and v < 0 for v in (overrides.max_size_mb, overrides.max_flops)
    ):
        return None
    return overrides


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def answer(argv: Sequence[str]) -> int | None:
    """Exit code 0 after printing the cached results, or None to run the Typer command."""
    if not argv or argv[0] != "check":
        return None
    values = _parse(argv[1:])
    if values is None:
        return None
    from gai_meta import check_cache
    from gai_meta.check import OK, ModelOutcome, render_outcome, request_key
    from gai_meta.errors import GaiMetaError
    from gai_meta.project import Overrides, load_project, resolve_specs

    overrides = _overrides(values)
    if not isinstance(overrides, Overrides):
        return None
    try:
        specs = resolve_specs(load_project(), overrides)
    except GaiMetaError:
        return None
    outcomes = []
    for spec in specs:
        hit = check_cache.lookup(request_key(spec))
        if hit is None or not isinstance(hit.get("parameters"), int):
            return None
        outcomes.append(ModelOutcome(spec, OK, parameters=hit["parameters"], cached=True))
    out = "".join(line + "\n" for o in outcomes for line in render_outcome(o))
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0
