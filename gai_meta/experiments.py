"""Experiment records: read the metadata of finished experiments, diff two, compare many.

An experiment is found from its folder (``<exp>/metadata/*.json``), its metadata folder, or a
single ``model_summary.json``. Everything here reads JSON only: it never imports torch, so
``diff`` and ``compare`` stay fast over many experiments.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gai_meta.errors import SourceError
from gai_meta.history import HISTORY_FILE, METRICS_FILE, EpochRecord, best_epoch, load_history_file

__all__ = [
    "METADATA_FILES",
    "Change",
    "CompareRow",
    "DiffSection",
    "ExperimentDiff",
    "ExperimentRecord",
    "compare_experiments",
    "compare_row",
    "diff_experiments",
    "expand_experiment_paths",
    "load_experiment",
]

SUMMARY_FILE = "model_summary.json"
PARAMETERS_FILE = "model_parameters.json"
CONFIG_FILE = "experiment_config.json"
DATALOADER_FILE = "dataloader_config_snapshot.json"
METADATA_FILES = (SUMMARY_FILE, PARAMETERS_FILE, CONFIG_FILE, DATALOADER_FILE, HISTORY_FILE)

_TOTAL_KEYS = (
    "total_parameters",
    "trainable_parameters",
    "non_trainable_parameters",
    "parameter_size_mb",
    "buffer_size_mb",
)
_MODEL_KEYS = ("model_architecture", "backbone_type", "input_shape", "model_bundle_metadata")


@dataclass(frozen=True)
class ExperimentRecord:
    """What gai-meta knows about one experiment; a field is ``None`` when its file is absent.

    ``name`` is the experiment folder's name; ``history`` comes from
    ``metadata/training_history.json``, else ``checkpoints/training_metrics.json``.
    """

    name: str
    path: Path
    metadata_dir: Path
    summary: dict[str, Any] | None = None
    parameters: dict[str, Any] | None = None
    experiment_config: dict[str, Any] | None = None
    dataloader: dict[str, Any] | None = None
    history: tuple[EpochRecord, ...] | None = None

    @property
    def trainer_config(self) -> dict[str, Any]:
        """``trainer_config`` of experiment_config.json, ``{}`` when absent."""
        value = (self.experiment_config or {}).get("trainer_config")
        return value if isinstance(value, dict) else {}


def load_experiment(path: str | os.PathLike[str]) -> ExperimentRecord:
    """Read an experiment's metadata from its folder, its metadata folder or a summary file.

    Raises SourceError (exit 2) for a missing path, a path that holds no metadata, or a
    metadata file that is not valid JSON of the expected kind.
    Example: ``load_experiment("experiments/run-1").summary["total_parameters"]``.
    """
    p = Path(path)
    if not p.exists():
        raise SourceError("no such file or folder", path=p)
    if p.is_file():
        summary = _read_json(p, expect=dict)
        if "total_parameters" not in summary:
            raise SourceError(
                "is not a model_summary.json (no 'total_parameters'); pass an experiment "
                "folder, its metadata/ folder or a model_summary.json",
                path=p,
            )
        meta = p.parent
        exp = meta.parent if meta.name == "metadata" else meta
        return ExperimentRecord(name=exp.resolve().name, path=p, metadata_dir=meta, summary=summary)
    if _has_metadata(p):
        meta = p
        exp = p.parent if p.name == "metadata" else p
    elif _has_metadata(p / "metadata"):
        meta, exp = p / "metadata", p
    else:
        raise SourceError(
            "holds no gai-meta metadata (no metadata/model_summary.json, "
            "experiment_config.json, ...); run 'gai-meta summarize' for it first",
            path=p,
        )
    files = {name: meta / name for name in METADATA_FILES}
    return ExperimentRecord(
        name=exp.resolve().name,
        path=p,
        metadata_dir=meta,
        summary=_optional_json(files[SUMMARY_FILE]),
        parameters=_optional_json(files[PARAMETERS_FILE]),
        experiment_config=_optional_json(files[CONFIG_FILE]),
        dataloader=_optional_json(files[DATALOADER_FILE]),
        history=_history(files[HISTORY_FILE], exp / "checkpoints" / METRICS_FILE),
    )


def _has_metadata(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in METADATA_FILES)


def _read_json(path: Path, *, expect: type) -> Any:
    try:
        value = json.loads(path.read_bytes())
    except OSError as err:
        raise SourceError(f"cannot read: {err.strerror or err}", path=path) from err
    except ValueError as err:
        raise SourceError(
            f"is not valid JSON ({err}); regenerate it with 'gai-meta summarize'", path=path
        ) from err
    if not isinstance(value, expect):
        raise SourceError(
            f"expected a JSON {'object' if expect is dict else 'list'}, "
            f"found {type(value).__name__}; regenerate it with 'gai-meta summarize'",
            path=path,
        )
    return value


def _optional_json(path: Path) -> dict[str, Any] | None:
    return _read_json(path, expect=dict) if path.is_file() else None


def _history(recorded: Path, metrics: Path) -> tuple[EpochRecord, ...] | None:
    for candidate in (recorded, metrics):
        if candidate.is_file():
            return tuple(load_history_file(candidate))
    return None


def expand_experiment_paths(patterns: Iterable[str]) -> tuple[list[Path], list[Path]]:
    """Expand glob patterns (for shells that did not); returns (experiments, skipped).

    Paths that exist but hold no metadata (a README beside the runs, an unfinished run) are
    returned as ``skipped``, whether they came from a quoted glob or from the shell's
    expansion; a path that does not exist, or a glob that matches nothing, is a SourceError.
    Order: as given, each pattern's matches sorted, duplicates dropped.
    """
    found: list[Path] = []
    skipped: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern))]
            if not matches:
                raise SourceError(f"no path matches {pattern!r}; check the pattern")
        else:
            matches = [Path(pattern)]
        for match in matches:
            if not match.exists():
                raise SourceError("no such file or folder; check the path", path=match)
            key = match.resolve()
            if key in seen:
                continue
            seen.add(key)
            (found if _is_experiment(match) else skipped).append(match)
    return found, skipped


def _is_experiment(p: Path) -> bool:
    if p.is_file():
        return p.name == SUMMARY_FILE
    return _has_metadata(p) or _has_metadata(p / "metadata")


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class CompareRow:
    """One experiment's row in ``gai-meta compare``. ``epochs`` counts recorded epochs;
    ``num_epochs`` is the configured number."""

    name: str
    path: str
    total_parameters: int | None
    trainable_parameters: int | None
    parameter_size_mb: float | None
    input_shape: list[int] | None
    learning_rate: float | None
    epochs: int | None
    num_epochs: int | None
    best_val_loss: float | None
    best_epoch: int | None
    last_val_loss: float | None

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object (field order as declared)."""
        return asdict(self)


def compare_row(record: ExperimentRecord) -> CompareRow:
    """Gather the comparison numbers of one experiment."""
    summary = record.summary or {}
    params = record.parameters or {}
    trainer = record.trainer_config
    history = record.history
    best = best_epoch(history) if history else None
    last_val = next((e.val_loss for e in reversed(history or ()) if e.val_loss is not None), None)
    return CompareRow(
        name=record.name,
        path=str(record.path),
        total_parameters=summary.get("total_parameters", params.get("total_parameters")),
        trainable_parameters=summary.get(
            "trainable_parameters", params.get("trainable_parameters")
        ),
        parameter_size_mb=summary.get("parameter_size_mb"),
        input_shape=summary.get("input_shape"),
        learning_rate=trainer.get("learning_rate", summary.get("learning_rate")),
        epochs=None if history is None else len(history),
        num_epochs=trainer.get("num_epochs"),
        best_val_loss=None if best is None else best.val_loss,
        best_epoch=None if best is None else best.epoch,
        last_val_loss=last_val,
    )


def compare_experiments(paths: Sequence[str | os.PathLike[str]]) -> list[CompareRow]:
    """One :class:`CompareRow` per experiment, in the order given."""
    return [compare_row(load_experiment(p)) for p in paths]


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    """One differing value. ``in_a``/``in_b`` are False when the key is absent on that side."""

    key: str
    a: Any
    b: Any
    in_a: bool = True
    in_b: bool = True

    def to_json(self) -> dict[str, Any]:
        """``{"key", "a"?, "b"?}``: a side is left out when the key is absent there."""
        out: dict[str, Any] = {"key": self.key}
        if self.in_a:
            out["a"] = self.a
        if self.in_b:
            out["b"] = self.b
        return out


@dataclass(frozen=True)
class DiffSection:
    """The changes in one part of the metadata; ``compared`` counts the keys looked at."""

    name: str
    compared: int
    changes: tuple[Change, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ExperimentDiff:
    """Everything that differs between experiments ``a`` and ``b``."""

    a: ExperimentRecord
    b: ExperimentRecord
    sections: tuple[DiffSection, ...]

    @property
    def identical(self) -> bool:
        """True when no compared value differs (exit 0 in the CLI, else 1)."""
        return not any(s.changes for s in self.sections)

    def to_json(self) -> dict[str, Any]:
        """The diff as a JSON object (``gai-meta diff --format json``)."""
        return {
            "schema_version": 1,
            "a": str(self.a.path),
            "b": str(self.b.path),
            "identical": self.identical,
            "sections": {
                s.name: {"compared": s.compared, "changes": [c.to_json() for c in s.changes]}
                for s in self.sections
            },
        }


def diff_experiments(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> ExperimentDiff:
    """Compare two experiments section by section.

    Sections: ``totals`` (parameter counts and sizes), ``model`` (architecture, input shape,
    bundle metadata), ``output_shapes``, ``parameter_groups`` (per type), ``trainer_config``
    (without ``artifact_dir``, which names the experiment rather than a setting),
    ``dataloader`` and ``losses`` (epochs, best and last). A section is compared when at
    least one side has the file it comes from.
    """
    ra, rb = load_experiment(a), load_experiment(b)
    sections = [
        DiffSection(name, *_compare(fa, fb))
        for name, fa, fb in ((name, extract(ra), extract(rb)) for name, extract in _SECTIONS)
        if fa is not None or fb is not None
    ]
    return ExperimentDiff(ra, rb, tuple(sections))


def _compare(
    fa: Mapping[str, Any] | None, fb: Mapping[str, Any] | None
) -> tuple[int, tuple[Change, ...]]:
    da, db = fa or {}, fb or {}
    keys = list(da) + [k for k in db if k not in da]
    changes = [
        Change(k, da.get(k), db.get(k), k in da, k in db)
        for k in keys
        if k not in da or k not in db or not _same(da[k], db[k])
    ]
    return len(keys), tuple(changes)


def _same(x: Any, y: Any) -> bool:
    if _number(x) and _number(y):  # 1 and 1.0 are the same setting
        return bool(x == y) or (math.isnan(x) and math.isnan(y))
    return type(x) is type(y) and bool(x == y)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists of mappings to dotted keys; other lists (shapes, anchors,
    strategy names) stay whole values."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and (value or not prefix):
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        if not value:
            out[prefix] = []
    else:
        out[prefix] = value
    return out


def _totals(r: ExperimentRecord) -> dict[str, Any] | None:
    source = r.summary if r.summary is not None else r.parameters
    if source is None:
        return None
    return {k: source[k] for k in _TOTAL_KEYS if k in source}


def _model(r: ExperimentRecord) -> dict[str, Any] | None:
    if r.summary is None:
        return None
    return _flatten({k: r.summary[k] for k in _MODEL_KEYS if k in r.summary})


def _outputs(r: ExperimentRecord) -> dict[str, Any] | None:
    if r.summary is None:
        return None
    shapes = r.summary.get("output_shapes")
    if not isinstance(shapes, list):
        return {"output_shapes": shapes}
    return {f"[{i}]": shape for i, shape in enumerate(shapes)}


def _groups(r: ExperimentRecord) -> dict[str, Any] | None:
    if r.parameters is None:
        return None
    groups = r.parameters.get("parameter_groups")
    return _flatten(groups) if isinstance(groups, dict) else {}


def _trainer(r: ExperimentRecord) -> dict[str, Any] | None:
    if r.experiment_config is None:
        return None
    trainer = {k: v for k, v in r.trainer_config.items() if k != "artifact_dir"}
    return _flatten(trainer)


def _dataloader(r: ExperimentRecord) -> dict[str, Any] | None:
    if r.dataloader is None:
        return None
    return _flatten({k: v for k, v in r.dataloader.items() if k != "schema_version"})


def _losses(r: ExperimentRecord) -> dict[str, Any] | None:
    if r.history is None:
        return None
    best = best_epoch(r.history)
    last = r.history[-1] if r.history else None
    return {
        "epochs": len(r.history),
        "best_val_loss": None if best is None else best.val_loss,
        "best_epoch": None if best is None else best.epoch,
        "last_epoch": None if last is None else last.epoch,
        "last_train_loss": None if last is None else last.train_loss,
        "last_val_loss": None if last is None else last.val_loss,
    }


_SECTIONS = (
    ("totals", _totals),
    ("model", _model),
    ("output_shapes", _outputs),
    ("parameter_groups", _groups),
    ("trainer_config", _trainer),
    ("dataloader", _dataloader),
    ("losses", _losses),
)
