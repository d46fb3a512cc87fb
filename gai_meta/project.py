"""Project configuration: ``[tool.gai-meta]`` in ``pyproject.toml``, merged with command-line flags.

:func:`find_pyproject` walks up from the current folder to the nearest ``pyproject.toml`` with a
``[tool.gai-meta]`` table (stopping at the repository root); :func:`resolve_specs` turns that
table, its ``[[tool.gai-meta.models]]`` entries and the command line's :class:`Overrides` into one
:class:`ModelSpec` per model to check. Paths written in ``pyproject.toml`` are relative to its
folder; paths given on the command line are relative to the current folder.

Every invalid value is a :class:`~gai_meta.errors.ConfigError` (exit 2) naming the key, e.g.
``tool.gai-meta.models[1].max_parameters``. Imports no torch (the cached check runs through here).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gai_meta.budgets import BUDGET_KEYS, Budgets
from gai_meta.errors import ConfigError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PROJECT_FILE",
    "ModelSpec",
    "Overrides",
    "Project",
    "find_pyproject",
    "load_project",
    "resolve_specs",
]

PROJECT_FILE = "pyproject.toml"
DEFAULT_BASELINE = "architecture.lock.json"
# Mirrors gai_meta.summary.DEVICES, which is not imported: the cached check path stays light.
_DEVICES = ("auto", "meta", "cpu", "cuda")
_MODEL_KEYS = (
    "name",
    "source",
    "config",
    "baseline",
    "input_shape",
    "inputs",
    "device",
    "trust_checkpoint",
    *BUDGET_KEYS,
)
_TOP_KEYS = (*_MODEL_KEYS, "models")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclasses.dataclass(frozen=True)
class Project:
    """A ``pyproject.toml`` holding a ``[tool.gai-meta]`` table."""

    path: Path
    table: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path.parent


@dataclasses.dataclass(frozen=True)
class Overrides:
    """What the command line says; ``None`` means "not given" (the project's value, if any, wins)."""

    source: str | None = None
    config: str | None = None
    baseline: str | None = None
    input_shape: tuple[int, ...] | None = None
    inputs: tuple[str, ...] | None = None
    device: str | None = None
    trust_checkpoint: bool | None = None
    max_parameters: int | None = None
    max_size_mb: float | None = None
    max_flops: float | None = None
    models: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that decides one model's check: where it comes from, its inputs and budgets."""

    name: str
    source: str  # an absolute path, or a ``package.module:factory`` reference
    config: Path | None
    baseline: Path
    input_shape: tuple[int, ...] | None
    inputs: tuple[str, ...]
    device: str
    trust_checkpoint: bool
    budgets: Budgets
    project_file: Path | None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form: the identity of a check request (the cache key is its hash)."""
        return {
            "name": self.name,
            "source": self.source,
            "config": None if self.config is None else str(self.config),
            "baseline": str(self.baseline),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "inputs": list(self.inputs),
            "device": self.device,
            "trust_checkpoint": self.trust_checkpoint,
            "budgets": self.budgets.to_json(),
            "project_file": None if self.project_file is None else str(self.project_file),
        }

    def input_files(self) -> list[Path]:
        """Files the model is read from: the source and the config.

        ``pyproject.toml`` is not one of them: every value it sets for this model is in the spec
        itself, so editing another model's entry does not invalidate this model's cached check.
        """
        files = [Path(self.source)] if is_path_source(self.source) else []
        return files + ([self.config] if self.config is not None else [])


def is_path_source(source: str) -> bool:
    """Whether ``source`` names a file (as opposed to a ``package.module:factory``)."""
    return not _FACTORY.match(source) or Path(source).exists()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML ({err}); fix the syntax", path=path) from None
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror or err}", path=path) from err


def _gai_table(data: Mapping[str, Any]) -> Any:
    tool = data.get("tool")
    return tool.get("gai-meta") if isinstance(tool, dict) else None


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: cwd) with ``[tool.gai-meta]``.

    The walk stops at the first folder holding ``.git`` (the repository root), so a project
    never picks up the configuration of an unrelated folder above it.
    """
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / PROJECT_FILE
        if path.is_file() and _gai_table(_read_toml(path)) is not None:
            return path
        if (candidate / ".git").exists():
            return None
    return None


def load_project(start: Path | None = None) -> Project | None:
    """The project configuration found from ``start`` (default: cwd), or ``None``.

    Example::

        project = load_project()
        project.table["source"] if project else None  # "configs/model.yaml"
    """
    path = find_pyproject(start)
    if path is None:
        return None
    table = _gai_table(_read_toml(path))
    if not isinstance(table, dict):
        raise ConfigError(
            f"tool.gai-meta: expected a table, found {_found(table)}; write [tool.gai-meta]",
            path=path,
        )
    return Project(path=path, table=table)


# -- validation of [tool.gai-meta] values -------------------------------------------------------


def _found(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    return f"{text} ({kind})"


class _Checker:
    """Validates one table; every error names ``prefix.key`` and the pyproject file."""

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.prefix = prefix

    def fail(self, key: str, expected: str, value: Any, fix: str) -> ConfigError:
        return ConfigError(
            f"{self.prefix}.{key}: expected {expected}, found {_found(value)}; {fix}",
            path=self.path,
        )

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value, f'write e.g. {key} = "..."')
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value, f"write {key} = true")
        return value

    def positive_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, "a whole number above 0", value, f"write e.g. {key} = 5000000")
        return value

    def positive_number(self, key: str, value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            example = "25.5" if key == "max_size_mb" else "2.5e9"
            raise self.fail(key, "a number above 0", value, f"write e.g. {key} = {example}")
        return float(value) if isinstance(value, float) else int(value)

    def shape(self, key: str, value: Any) -> tuple[int, ...]:
        fix = f"write e.g. {key} = [1, 3, 640, 640]"
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace("x", ",").split(",")]
            try:
                value = [int(p) for p in parts]
            except ValueError:
                raise self.fail(key, "a list of whole numbers", value, fix) from None
        ok = isinstance(value, list) and value and all(_is_int(d) and d >= 1 for d in value)
        if not ok:
            raise self.fail(key, "a non-empty list of whole numbers above 0", value, fix)
        return tuple(value)

    def shapes(self, key: str, value: Any) -> tuple[tuple[int, ...], ...]:
        fix = f"write e.g. {key} = [[1, 2, 160, 160, 15], [1, 2, 80, 80, 15]]"
        ok = isinstance(value, list) and all(
            isinstance(s, list) and all(_is_int(d) and d >= 0 for d in s) for s in value
        )
        if not ok:
            raise self.fail(key, "a list of shapes (lists of whole numbers)", value, fix)
        return tuple(tuple(s) for s in value)

    def strings(self, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
            raise self.fail(
                key, "a list of strings", value, f'write e.g. {key} = ["input_ids=1,16:int64"]'
            )
        return tuple(value)

    def device(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not (
            value in _DEVICES or re.fullmatch(r"cuda:\d+", value)
        ):
            raise self.fail(
                key, f"one of {', '.join(_DEVICES)} (or cuda:N)", value, f'write {key} = "auto"'
            )
        return value

    def name(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not _NAME.match(value):
            raise self.fail(
                key,
                "a name of letters, digits, '.', '_' or '-'",
                value,
                f'write e.g. {key} = "detector"',
            )
        return value


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _validate(
    table: Mapping[str, Any], allowed: tuple[str, ...], check: _Checker
) -> dict[str, Any]:
    """Typed values of the keys present in ``table``; unknown keys are errors (typos)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(
                f"{check.prefix}.{key}: unknown key; known keys are {', '.join(allowed)}",
                path=check.path,
            )
        if key == "models":
            continue
        if key in ("source", "config", "baseline"):
            out[key] = check.string(key, value)
        elif key == "name":
            out[key] = check.name(key, value)
        elif key == "input_shape":
            out[key] = check.shape(key, value)
        elif key == "inputs":
            out[key] = check.strings(key, value)
        elif key == "device":
            out[key] = check.device(key, value)
        elif key == "trust_checkpoint":
            out[key] = check.boolean(key, value)
        elif key == "max_parameters":
            out[key] = check.positive_int(key, value)
        elif key in ("max_size_mb", "max_flops"):
            out[key] = check.positive_number(key, value)
        elif key == "output_shapes":
            out[key] = check.shapes(key, value)
    return out


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _resolve_source(base: Path, value: str) -> str:
    if _FACTORY.match(value) and not (base / value).exists():
        return value
    return str(_resolve(base, value))


def _cli_values(o: Overrides) -> dict[str, Any]:
    values = {
        "source": o.source,
        "config": o.config,
        "baseline": o.baseline,
        "input_shape": o.input_shape,
        "inputs": o.inputs,
        "device": o.device,
        "trust_checkpoint": o.trust_checkpoint,
        "max_parameters": o.max_parameters,
        "max_size_mb": o.max_size_mb,
        "max_flops": o.max_flops,
    }
    return {k: v for k, v in values.items() if v is not None}


def _spec(
    name: str,
    project_values: Mapping[str, Any],
    cli_values: Mapping[str, Any],
    *,
    project: Project | None,
    cwd: Path,
    default_baseline: str,
) -> ModelSpec:
    root = project.root if project else cwd

    def pick_path(key: str) -> Path | None:
        if key in cli_values:
            return _resolve(cwd, cli_values[key])
        if key in project_values:
            return _resolve(root, project_values[key])
        return None

    if "source" in cli_values:
        source = _resolve_source(cwd, cli_values["source"])
    elif "source" in project_values:
        source = _resolve_source(root, project_values["source"])
    else:
        where = (
            f"set source in [tool.gai-meta] of {project.path}"
            if project
            else "or set source in [tool.gai-meta] of pyproject.toml"
        )
        raise UsageError(
            f"no model source configured: pass SOURCE (e.g. gai-meta check model.yaml) {where}"
        )
    merged = {**project_values, **cli_values}
    # An input given on the command line replaces the project's, whichever form each uses.
    if "input_shape" in cli_values:
        merged.pop("inputs", None)
    if "inputs" in cli_values:
        merged.pop("input_shape", None)
    budgets = Budgets(
        max_parameters=merged.get("max_parameters"),
        max_size_mb=merged.get("max_size_mb"),
        max_flops=merged.get("max_flops"),
        output_shapes=merged.get("output_shapes"),
    )
    return ModelSpec(
        name=name,
        source=source,
        config=pick_path("config"),
        baseline=pick_path("baseline") or root / default_baseline,
        input_shape=merged.get("input_shape"),
        inputs=tuple(merged.get("inputs", ())),
        device=merged.get("device", "auto"),
        trust_checkpoint=bool(merged.get("trust_checkpoint", False)),
        budgets=budgets,
        project_file=project.path if project else None,
    )


def _default_name(source: str) -> str:
    if _FACTORY.match(source) and not Path(source).exists():
        return source.rpartition(":")[2]
    return Path(source).stem or "model"


def resolve_specs(
    project: Project | None, overrides: Overrides, *, cwd: Path | None = None
) -> list[ModelSpec]:
    """One :class:`ModelSpec` per model to check, command line over project over defaults.

    With SOURCE on the command line, one model is checked with the project's top-level keys as
    defaults. Otherwise each ``[[tool.gai-meta.models]]`` entry (or those named by ``--model``)
    is checked with the top-level keys as defaults; without entries, the top-level table is the
    one model.
    """
    cwd = (cwd or Path.cwd()).resolve()
    cli = _cli_values(overrides)
    top: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    if project is not None:
        check = _Checker(project.path, "tool.gai-meta")
        top = _validate(project.table, _TOP_KEYS, check)
        entries = _model_entries(project, top)
    if overrides.source is not None:
        if overrides.models:
            raise UsageError("pass either SOURCE or --model NAME, not both")
        name = top.get("name") or _default_name(overrides.source)
        baseline = top.get("baseline", DEFAULT_BASELINE)
        # With a SOURCE on the command line, a project-level baseline still applies (documented).
        return [
            _spec(
                name,
                {**top, "baseline": baseline},
                cli,
                project=project,
                cwd=cwd,
                default_baseline=DEFAULT_BASELINE,
            )
        ]
    if not entries:
        if overrides.models:
            where = project.path if project else "pyproject.toml"
            raise UsageError(
                f"--model {overrides.models[0]}: {where} has no [[tool.gai-meta.models]] entries"
            )
        source = top.get("source") or cli.get("source") or ""
        name = top.get("name") or _default_name(source)
        return [_spec(name, top, cli, project=project, cwd=cwd, default_baseline=DEFAULT_BASELINE)]
    names = [e["name"] for e in entries]
    unknown = [m for m in overrides.models if m not in names]
    if unknown:
        raise UsageError(f"--model {unknown[0]}: no such model; the project has {', '.join(names)}")
    chosen = [e for e in entries if not overrides.models or e["name"] in overrides.models]
    if len(chosen) > 1:
        for key in ("baseline", "config"):
            if key in cli:
                raise UsageError(
                    f"--{key} applies to one model; pick it with --model NAME "
                    f"(the project has {', '.join(names)})"
                )
    defaults = {k: v for k, v in top.items() if k != "name"}
    return [
        _spec(
            e["name"],
            {**defaults, **e},
            cli,
            project=project,
            cwd=cwd,
            default_baseline=f"architecture.{e['name']}.lock.json",
        )
        for e in chosen
    ]


def _model_entries(project: Project, top: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = project.table.get("models")
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"tool.gai-meta.models: expected an array of tables, found {_found(raw)}; "
            "write [[tool.gai-meta.models]] sections",
            path=project.path,
        )
    if "baseline" in top:
        raise ConfigError(
            "tool.gai-meta.baseline: with [[tool.gai-meta.models]] each model has its own "
            "baseline; move baseline into the model entries",
            path=project.path,
        )
    entries: list[dict[str, Any]] = []
    seen_names: dict[str, int] = {}
    seen_baselines: dict[Path, int] = {}
    for i, item in enumerate(raw):
        prefix = f"tool.gai-meta.models[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(
                f"{prefix}: expected a table, found {_found(item)}; write [[tool.gai-meta.models]]",
                path=project.path,
            )
        check = _Checker(project.path, prefix)
        entry = _validate(item, _MODEL_KEYS, check)
        if "name" not in entry:
            raise ConfigError(
                f'{prefix}.name: required; write name = "detector" in each model entry',
                path=project.path,
            )
        if "source" not in entry and "source" not in top:
            raise ConfigError(
                f'{prefix}.source: required (no top-level source to inherit); write source = "..."',
                path=project.path,
            )
        name = entry["name"]
        if name in seen_names:
            raise ConfigError(
                f"{prefix}.name: '{name}' is already the name of models[{seen_names[name]}]; "
                "give each model its own name",
                path=project.path,
            )
        seen_names[name] = i
        baseline = _resolve(project.root, entry.get("baseline", f"architecture.{name}.lock.json"))
        if baseline in seen_baselines:
            raise ConfigError(
                f"{prefix}.baseline: {baseline.name} is already the baseline of "
                f"models[{seen_baselines[baseline]}]; give each model its own baseline",
                path=project.path,
            )
        seen_baselines[baseline] = i
        entries.append(entry)
    return entries
