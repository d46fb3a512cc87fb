"""Training history: read it back from an experiment folder, or record it epoch by epoch.

``training_history.json`` is a JSON list of ``{"epoch", "train_loss", "val_loss",
"coco_metrics"?}`` ordered by epoch, the format the training system writes (``coco_metrics`` only
when non-empty). :func:`read_history` rebuilds it from ``checkpoints/training_metrics.json`` or,
failing that, from the fields stored in each ``epoch_*.pt``; :func:`record_epoch` appends one
epoch from inside a training loop, atomically and safely under concurrent writers.

Importing this module does not import torch; reading checkpoints does, inside the function.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gai_meta.atomic import dump_json, write_json_atomic
from gai_meta.errors import CheckpointError, GaiMetaError, SourceError, UsageError

__all__ = [
    "HISTORY_FILE",
    "METRICS_FILE",
    "EpochRecord",
    "TrainingHistory",
    "best_epoch",
    "experiment_history",
    "history_entries",
    "load_history_file",
    "read_history",
    "record_epoch",
    "write_history",
]

HISTORY_FILE = "training_history.json"
METRICS_FILE = "training_metrics.json"
_RESERVED = ("epoch", "train_loss", "val_loss", "coco_metrics")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training. Non-finite losses are kept as ``None`` (JSON has no NaN).

    ``extra`` holds any further per-epoch metrics (e.g. ``lr``), written as top-level keys.
    """

    epoch: int
    train_loss: float | None
    val_loss: float | None = None
    coco_metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The entry as written to ``training_history.json``."""
        entry: dict[str, Any] = {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
        }
        if self.coco_metrics:
            entry["coco_metrics"] = self.coco_metrics
        entry.update(self.extra)
        return entry


@dataclass(frozen=True)
class TrainingHistory:
    """A training history and where it was read from.

    ``source`` is the file (``training_metrics.json`` / ``training_history.json``) or the
    checkpoints folder it came from; ``skipped`` lists checkpoints that gave no epoch, each with
    the reason, so that callers can warn about them.
    """

    experiment_dir: Path
    source: Path
    epochs: tuple[EpochRecord, ...]
    skipped: tuple[tuple[Path, str], ...] = ()

    @property
    def default_output(self) -> Path:
        """``<experiment>/metadata/training_history.json``."""
        return self.experiment_dir / "metadata" / HISTORY_FILE


def history_entries(epochs: Sequence[EpochRecord]) -> list[dict[str, Any]]:
    """The JSON document (a list of entries) for ``epochs``."""
    return [record.to_json() for record in epochs]


def best_epoch(epochs: Sequence[EpochRecord]) -> EpochRecord | None:
    """The epoch with the lowest ``val_loss`` (earliest on ties); ``None`` when there is none."""
    best: EpochRecord | None = None
    for record in epochs:
        if record.val_loss is None:
            continue
        if best is None or best.val_loss is None or record.val_loss < best.val_loss:
            best = record
    return best


# --------------------------------------------------------------------------- reading


def read_history(path: str | os.PathLike[str]) -> TrainingHistory:
    """Read the training history of an experiment folder (or of its ``checkpoints/`` folder).

    Sources, first found wins: ``checkpoints/training_metrics.json``; the ``epoch``,
    ``train_loss`` and ``val_loss`` stored in each ``checkpoints/epoch_*.pt`` (loaded with
    ``weights_only=True`` and memory-mapped, so weights are not read); an existing
    ``metadata/training_history.json``. Raises SourceError (exit 2) for a path that is not a
    folder, a folder with none of these, or a corrupt metrics file.
    Example: ``[e.val_loss for e in read_history("experiments/run-1").epochs]``.
    """
    p = Path(path)
    if not p.exists():
        raise SourceError("no such folder; pass an experiment folder", path=p)
    if not p.is_dir():
        raise SourceError(
            "is a file, expected an experiment folder or its checkpoints/ folder "
            "(the folder holding training_metrics.json or epoch_*.pt)",
            path=p,
        )
    exp_dir, ckpt_dir = _layout(p)
    metrics = ckpt_dir / METRICS_FILE
    if metrics.is_file():
        return TrainingHistory(exp_dir, metrics, tuple(load_history_file(metrics)))
    checkpoints = sorted(ckpt_dir.glob("epoch_*.pt")) if ckpt_dir.is_dir() else []
    if checkpoints:
        epochs, skipped = _from_checkpoints(checkpoints)
        return TrainingHistory(exp_dir, ckpt_dir, epochs, skipped)
    recorded = exp_dir / "metadata" / HISTORY_FILE
    if recorded.is_file():
        return TrainingHistory(exp_dir, recorded, tuple(load_history_file(recorded)))
    raise SourceError(
        f"holds neither checkpoints/{METRICS_FILE} nor checkpoints/epoch_*.pt nor "
        f"metadata/{HISTORY_FILE}; pass the experiment folder the training run wrote "
        "(its artifact_dir)",
        path=p,
    )


def _layout(p: Path) -> tuple[Path, Path]:
    """(experiment folder, checkpoints folder) for a path naming either."""
    if (p / "checkpoints").is_dir():
        return p, p / "checkpoints"
    if p.name == "checkpoints" or (p / METRICS_FILE).is_file() or any(p.glob("epoch_*.pt")):
        return p.parent, p
    return p, p / "checkpoints"


def load_history_file(path: str | os.PathLike[str]) -> list[EpochRecord]:
    """Parse a ``training_metrics.json`` or ``training_history.json`` list, sorted by epoch.

    An epoch listed twice (a resumed run) keeps its last entry. Raises SourceError naming the
    file and the first bad entry when the file is not such a list.
    """
    p = Path(path)
    try:
        # The stdlib parser accepts NaN/Infinity, which Python's json.dump writes for
        # diverged losses; orjson would refuse the whole file.
        raw = json.loads(p.read_bytes())
    except OSError as err:
        raise SourceError(f"cannot read: {err.strerror or err}", path=p) from err
    except ValueError as err:
        raise SourceError(
            f"is not valid JSON ({err}); the file is corrupt: restore it, or delete it so "
            "that the history is read from the epoch_*.pt checkpoints",
            path=p,
        ) from err
    if not isinstance(raw, list):
        raise SourceError(
            f"expected a JSON list of epoch entries, found {type(raw).__name__}; "
            "restore the file or delete it",
            path=p,
        )
    by_epoch: dict[int, EpochRecord] = {}
    for i, item in enumerate(raw):
        try:
            record = _record_from_mapping(item)
        except ValueError as err:
            raise SourceError(f"entry {i}: {err}; fix or delete that entry", path=p) from err
        by_epoch[record.epoch] = record
    return [by_epoch[k] for k in sorted(by_epoch)]


def _record_from_mapping(item: Any) -> EpochRecord:
    if not isinstance(item, dict):
        raise ValueError(f"expected an object with epoch/train_loss/val_loss, found {item!r:.60}")
    if "epoch" not in item:
        raise ValueError("has no 'epoch'")
    coco = item.get("coco_metrics") or {}
    if not isinstance(coco, dict):
        raise ValueError(f"coco_metrics is {type(coco).__name__}, expected an object")
    return EpochRecord(
        epoch=_epoch(item["epoch"]),
        train_loss=_loss(item.get("train_loss"), "train_loss"),
        val_loss=_loss(item.get("val_loss"), "val_loss"),
        coco_metrics=coco,
        extra={k: v for k, v in item.items() if k not in _RESERVED},
    )


def _epoch(value: Any) -> int:
    value = _scalar(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"epoch is {value!r}, expected a whole number 0 or more")
    return value


def _loss(value: Any, name: str) -> float | None:
    value = _scalar(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is {value!r:.40}, expected a number or null")
    return float(value) if math.isfinite(value) else None


def _scalar(value: Any) -> Any:
    """A 0-d tensor or numpy scalar as a Python number; anything else unchanged."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value


def _from_checkpoints(
    paths: Sequence[Path],
) -> tuple[tuple[EpochRecord, ...], tuple[tuple[Path, str], ...]]:
    by_epoch: dict[int, EpochRecord] = {}
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            obj = _load_checkpoint(path)
        except CheckpointError as err:
            skipped.append((path, err.message))
            continue
        if not isinstance(obj, dict) or "epoch" not in obj:
            skipped.append((path, "no 'epoch' field"))
            continue
        try:
            record = EpochRecord(
                epoch=_epoch(obj["epoch"]),
                train_loss=_loss(obj.get("train_loss"), "train_loss"),
                val_loss=_loss(obj.get("val_loss"), "val_loss"),
            )
        except ValueError as err:
            skipped.append((path, str(err)))
            continue
        by_epoch[record.epoch] = record
    return tuple(by_epoch[k] for k in sorted(by_epoch)), tuple(skipped)


def _load_checkpoint(path: Path) -> Any:
    import pickle
    import warnings

    import torch

    # mmap maps the tensor storages instead of reading them; only the zip format supports it.
    mmap = zipfile.is_zipfile(path)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols on foreign files; the skip reason says enough.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refused by weights_only=True loading ({_unpickler_detail(err)}): corrupt, "
            "or needs code execution to load",
            path=path,
        ) from err
    except Exception as err:  # torch raises many types for truncated or foreign files
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"not a readable checkpoint: {msg:.120}", path=path) from err


def _unpickler_detail(err: Exception) -> str:
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        if rest:
            return rest[0][:120]
    return type(err).__name__


# --------------------------------------------------------------------------- writing


def write_history(history: TrainingHistory, out: str | os.PathLike[str] | None = None) -> Path:
    """Write ``history`` to ``out`` (a file path) or to its default place; returns the path."""
    target = history.default_output if out is None else Path(out)
    return write_json_atomic(target, history_entries(history.epochs))


def experiment_history(
    experiment_dir: str | os.PathLike[str],
) -> tuple[list[Any] | None, list[str]]:
    """The ``training_history.json`` document for an experiment folder, and notes about it.

    For ``summarize`` on a checkpoint inside an experiment: a folder without any history gives
    ``(None, [])``; an unreadable history gives ``(None, [reason])`` instead of failing, since the
    model's files do not depend on it. Skipped checkpoints are listed in the notes.
    """
    try:
        hist = read_history(experiment_dir)
    except SourceError as err:
        if "holds neither" in err.message:
            return None, []
        return None, [f"training history not written: {err}"]
    notes = [f"skipped {path.name} for the training history: {why}" for path, why in hist.skipped]
    return history_entries(hist.epochs), notes


def record_epoch(
    artifact_dir: str | os.PathLike[str],
    *,
    epoch: int,
    train_loss: float | None,
    val_loss: float | None = None,
    **metrics: Any,
) -> Path:
    """Add one epoch to ``{artifact_dir}/metadata/training_history.json``; returns its path.

    An entry with the same epoch is replaced; entries stay sorted by epoch. ``coco_metrics``
    (a mapping) is kept when non-empty; any other keyword becomes a top-level key of the entry.
    The read-modify-write holds an exclusive lock (``fcntl.flock`` on a lock file beside it), so
    concurrent writers never lose entries, and the file is replaced atomically, so a process
    killed mid-write leaves the previous file intact.
    Example: ``record_epoch("experiments/run-1", epoch=3, train_loss=0.41, val_loss=0.52)``.
    """
    try:
        record = EpochRecord(
            epoch=_epoch(epoch),
            train_loss=_loss(train_loss, "train_loss"),
            val_loss=_loss(val_loss, "val_loss"),
            coco_metrics=_coco(metrics.pop("coco_metrics", None)),
            extra={k: _scalar(v) for k, v in metrics.items()},
        )
        dump_json(record.to_json())
    except ValueError as err:
        raise UsageError(f"record_epoch: {err}") from err
    except TypeError as err:  # orjson: a metric that is not JSON (an object, a tensor, ...)
        raise UsageError(
            f"record_epoch: {err}; pass metrics as numbers, text, lists or mappings"
        ) from err
    target = Path(artifact_dir) / "metadata" / HISTORY_FILE
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GaiMetaError(
            f"cannot create the metadata folder: {err.strerror or err}", path=target.parent
        ) from err
    with _locked(target.with_name(f".{HISTORY_FILE}.lock")):
        epochs = load_history_file(target) if target.exists() else []
        kept = [r for r in epochs if r.epoch != record.epoch]
        kept.append(record)
        kept.sort(key=lambda r: r.epoch)
        return write_json_atomic(target, history_entries(kept))


def _coco(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"coco_metrics is {type(value).__name__}, expected a mapping")
    return dict(value)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # The lock file is never deleted: removing it while another process waits on it would
    # let two writers hold "the" lock at once.
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: atomic replace only, no lock
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock, as does the process dying
