"""Hand-written experiment folders for the records tests (no torch, no core needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def summary(total: int = 1000, trainable: int | None = None, **over: Any) -> dict[str, Any]:
    trainable = total if trainable is None else trainable
    doc: dict[str, Any] = {
        "schema_version": 1,
        "model_architecture": "GAIYoloV12",
        "backbone_type": "TinyCSPBackbone",
        "total_parameters": total,
        "trainable_parameters": trainable,
        "non_trainable_parameters": total - trainable,
        "parameter_size_mb": round(total * 4 / 2**20, 2),
        "buffer_size_mb": 0.01,
        "input_shape": [1, 3, 320, 320],
        "output_shapes": [[1, 2, 40, 40, 15], [1, 2, 20, 20, 15]],
        "model_bundle_metadata": {"model_name": "m", "num_classes": 10, "strides": [8, 16]},
        "device": "cpu",
        "optimizer": "adamw",
        "scheduler": None,
        "learning_rate": 0.001,
        "weight_decay": 0.0,
    }
    doc.update(over)
    return doc


def parameters(groups: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    """``groups``: type -> (count, total_params, trainable_params)."""
    return {
        "schema_version": 1,
        "total_parameters": sum(g[1] for g in groups.values()),
        "trainable_parameters": sum(g[2] for g in groups.values()),
        "modules": {},
        "parameter_groups": {
            t: {"count": c, "total_params": n, "trainable_params": tr}
            for t, (c, n, tr) in groups.items()
        },
    }


def trainer(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "num_epochs": 10,
        "learning_rate": 0.001,
        "weight_decay": 0.0,
        "device": "auto",
        "gradient_clip_norm": None,
        "log_interval": 10,
        "checkpoint_interval": 5,
        "optimizer": "adamw",
        "scheduler": None,
        "scheduler_params": {},
        "assigner_params": {},
        "artifact_dir": "experiments/x",
        "enable_tensorboard": True,
        "tensorboard_log_interval": 10,
    }
    doc.update(over)
    return doc


def make_experiment(
    root: Path,
    name: str,
    *,
    files: dict[str, Any] | None = None,
    metrics: list[dict[str, Any]] | None = None,
) -> Path:
    """An experiment folder with ``metadata/<file>`` for each entry of ``files``."""
    exp = root / name
    (exp / "metadata").mkdir(parents=True)
    default: dict[str, Any] = {
        "model_summary.json": summary(),
        "model_parameters.json": parameters(
            {"Conv2d": (2, 900, 900), "BatchNorm2d": (2, 100, 100)}
        ),
        "experiment_config.json": {"schema_version": 1, "trainer_config": trainer()},
        "dataloader_config_snapshot.json": {"batch_size": 8, "augmentations": [{"type": "Flip"}]},
        "training_history.json": [
            {"epoch": 1, "train_loss": 1.0, "val_loss": 0.9},
            {"epoch": 2, "train_loss": 0.5, "val_loss": 0.4},
            {"epoch": 3, "train_loss": 0.3, "val_loss": 0.6},
        ],
    }
    for file, doc in (default if files is None else files).items():
        (exp / "metadata" / file).write_text(json.dumps(doc))
    if metrics is not None:
        (exp / "checkpoints").mkdir()
        (exp / "checkpoints" / "training_metrics.json").write_text(json.dumps(metrics))
    return exp
