"""The package-level Python API: lazy exports that never import torch on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gai_meta

ROOT = Path(__file__).resolve().parents[1]


def test_import_gai_meta_does_not_import_torch() -> None:
    code = (
        "import sys, gai_meta; "
        "assert callable(gai_meta.record_epoch) and callable(gai_meta.load_config); "
        "assert callable(gai_meta.generate_metadata); "
        "sys.exit('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_lazy_exports(tmp_path: Path) -> None:
    from gai_meta.history import record_epoch

    assert gai_meta.record_epoch is record_epoch
    assert set(gai_meta.__all__) <= set(dir(gai_meta))
    assert set(gai_meta.__all__) - {"__version__"} == set(gai_meta._LAZY)
    path = gai_meta.record_epoch(tmp_path, epoch=1, train_loss=0.5)
    assert json.loads(path.read_text()) == [{"epoch": 1, "train_loss": 0.5, "val_loss": None}]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        gai_meta.nope  # noqa: B018


# --------------------------------------------------------------------------- generate_metadata


def _tiny_model() -> Any:
    from torch import nn

    # input 1x3x8x8: conv 3x3 no padding -> 1x4x6x6 -> flatten 144 -> linear 5
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=False),  # 3*4*9 = 108
        nn.BatchNorm2d(4),  # 4 + 4 = 8
        nn.Flatten(),
        nn.Linear(144, 5),  # 144*5 + 5 = 725
    )


def test_generate_metadata_in_memory_model(tmp_path: Path) -> None:
    model = _tiny_model()
    model[0].weight.requires_grad_(False)  # the loop's own freezing is what gets recorded
    model.train()
    record_path = gai_meta.record_epoch(tmp_path, epoch=1, train_loss=1.0)
    before = record_path.read_bytes()
    config = {
        "experiment": {"name": "Live Run", "learning_rate": 0.01, "optimizer": "sgd"},
        "dataloader": {"batch_size": 2},
    }
    paths = gai_meta.generate_metadata(model, tmp_path, config=config, input_shape=(1, 3, 8, 8))
    meta = tmp_path / "metadata"
    assert paths == {
        "model_summary.json": meta / "model_summary.json",
        "model_parameters.json": meta / "model_parameters.json",
        "experiment_config.json": meta / "experiment_config.json",
        "dataloader_config_snapshot.json": meta / "dataloader_config_snapshot.json",
    }
    summary = json.loads(paths["model_summary.json"].read_text())
    assert summary["total_parameters"] == 841  # 108 + 8 + 725
    assert summary["trainable_parameters"] == 733  # 841 - 108 (frozen conv weight)
    assert summary["input_shape"] == [1, 3, 8, 8]
    assert summary["output_shapes"] == [[1, 5]]
    assert (summary["optimizer"], summary["learning_rate"]) == ("sgd", 0.01)
    assert summary["source"]["kind"] == "module"
    exp = json.loads(paths["experiment_config.json"].read_text())
    assert exp["trainer_config"]["artifact_dir"] == "experiments/live-run"
    assert exp["provenance"]["config_path"] is None
    assert json.loads(paths["dataloader_config_snapshot.json"].read_text()) == {"batch_size": 2}
    assert model.training  # mode restored
    assert not model[0].weight.requires_grad and model[3].weight.requires_grad
    assert record_path.read_bytes() == before  # the history belongs to record_epoch


def test_generate_metadata_without_config_or_shape(tmp_path: Path) -> None:
    paths = gai_meta.generate_metadata(_tiny_model(), tmp_path)
    assert set(paths) == {"model_summary.json", "model_parameters.json"}
    summary = json.loads(paths["model_summary.json"].read_text())
    assert (summary["input_shape"], summary["output_shapes"], summary["learning_rate"]) == (
        None,
        None,
        None,
    )
    assert summary["total_parameters"] == 841


def test_generate_metadata_gai_model_from_config(tmp_path: Path, tiny_config: Path) -> None:
    from helpers import gai_params

    from gai_meta.config import load_config
    from gai_meta.models import build_model, model_config_from_mapping

    cfg = load_config(tiny_config)
    model = build_model(model_config_from_mapping(cfg.section("model")))
    paths = gai_meta.generate_metadata(model, tmp_path / "run", config=tiny_config)
    summary = json.loads(paths["model_summary.json"].read_text())
    # tiny: base 8, depth 2, hidden 16, 3 classes, two groups of two anchors, input 64x64
    assert summary["total_parameters"] == gai_params(8, 2, 16, 3, [2, 2])
    assert summary["input_shape"] == [1, 3, 64, 64]  # from model.input_size
    # each backbone stage halves the input (stride-2 conv): 64 -> 32 -> 16, as the seed's
    # 320 -> 160, 80; 2 anchors per head, 3 classes + 5 = 8 values
    assert summary["output_shapes"] == [[1, 2, 32, 32, 8], [1, 2, 16, 16, 8]]
    assert summary["model_bundle_metadata"]["strides"] == [8, 16]
    exp = json.loads(paths["experiment_config.json"].read_text())
    assert exp["provenance"]["config_sha256"] == cfg.sha256


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"colour": "red"}, "unknown option(s) colour; supported: device"),
        ({"input_shape": (1, 0, 8)}, "input_shape (1, 0, 8) must be whole numbers >= 1"),
        ({"config": 42}, "config is a int; pass a dict"),
    ],
)
def test_generate_metadata_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], needle: str
) -> None:
    from gai_meta.errors import UsageError

    with pytest.raises(UsageError) as info:
        gai_meta.generate_metadata(_tiny_model(), tmp_path, **kwargs)
    assert needle in str(info.value)
    assert not (tmp_path / "metadata").exists()


def test_generate_metadata_not_a_module(tmp_path: Path) -> None:
    from gai_meta.errors import UsageError

    with pytest.raises(UsageError, match=r"model is a dict, expected a torch\.nn\.Module"):
        gai_meta.generate_metadata({}, tmp_path)  # type: ignore[arg-type]


def test_generate_metadata_forward_failure_writes_nothing(tmp_path: Path) -> None:
    from gai_meta.errors import ForwardError

    with pytest.raises(ForwardError):
        gai_meta.generate_metadata(_tiny_model(), tmp_path, input_shape=(1, 3, 9, 9))
    assert not (tmp_path / "metadata").exists()
