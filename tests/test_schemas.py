"""The shipped JSON Schemas are valid and accept exactly what gai-meta writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gai_meta.atomic import dump_json
from gai_meta.config import dataloader_snapshot, experiment_config_document, load_config
from gai_meta.errors import UsageError
from gai_meta.history import read_history, record_epoch, write_history
from gai_meta.schema import SCHEMA_NAMES, available_schemas, load_schema, schema_path

REF = Path("/work/shared/reference/configs")
REAL_CONFIGS = sorted(REF.glob("*.yaml")) if REF.is_dir() else []


def _validate(name: str, doc: Any) -> None:
    # through JSON, as a reader of the file would see it
    jsonschema.validate(
        json.loads(dump_json(doc)), load_schema(name), cls=jsonschema.Draft202012Validator
    )


def _errors(name: str, doc: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema(name))
    return [e.message for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("name", available_schemas())
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"{name}.json"
    assert schema_path(f"{name}.json") == schema_path(name)


def test_schema_names() -> None:
    assert set(available_schemas()) <= set(SCHEMA_NAMES)
    assert {"experiment_config", "dataloader_config_snapshot", "training_history"} <= set(
        available_schemas()
    )
    assert schema_path("history").name == "training_history.json"
    with pytest.raises(UsageError, match="no schema named 'x'"):
        load_schema("x")


@pytest.mark.parametrize("path", REAL_CONFIGS, ids=lambda p: p.name)
def test_experiment_config_of_real_configs_validates(path: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "epoch_001.pt"
    ckpt.write_bytes(b"x")
    _validate("experiment_config", experiment_config_document(load_config(path), checkpoint=ckpt))
    _validate("dataloader_config_snapshot", dataloader_snapshot(load_config(path)))


def test_experiment_config_schema_rejects(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("experiment: {name: x}\n")
    good = json.loads(dump_json(experiment_config_document(load_config(path))))
    assert _errors("experiment_config", good) == []
    bad = json.loads(json.dumps(good))
    del bad["trainer_config"]["num_epochs"]
    bad["trainer_config"]["learning_rate"] = "0.1"
    bad["provenance"]["config_sha256"] = "abc"
    assert sorted(_errors("experiment_config", bad)) == sorted(
        [
            "'num_epochs' is a required property",
            "'0.1' is not of type 'number'",
            "'abc' does not match '^[0-9a-f]{64}$'",
        ]
    )


def test_training_history_files_validate(tmp_path: Path) -> None:
    path = record_epoch(tmp_path, epoch=1, train_loss=float("nan"), coco_metrics={"mAP": 0.1})
    record_epoch(tmp_path, epoch=2, train_loss=0.5, val_loss=0.4, lr=0.01)
    _validate("training_history", json.loads(path.read_text()))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "training_metrics.json").write_text(
        '[{"epoch": 1, "train_loss": 1, "val_loss": 2, "coco_metrics": {}}]'
    )
    written = write_history(read_history(tmp_path))
    _validate("training_history", json.loads(written.read_text()))


@pytest.mark.parametrize(
    "doc",
    [
        {"epoch": 1},
        [{"epoch": -1, "train_loss": 1, "val_loss": 1}],
        [{"epoch": 1, "train_loss": "1", "val_loss": 1}],
        [{"epoch": 1, "train_loss": 1, "val_loss": 1, "coco_metrics": {}}],
    ],
)
def test_training_history_schema_rejects(doc: Any) -> None:
    assert _errors("training_history", doc)


def test_dataloader_schema_rejects() -> None:
    assert _errors("dataloader_config_snapshot", {"batch_size": 0})
    assert _errors("dataloader_config_snapshot", {"augmentations": [{"p": 1}]})
    assert _errors("dataloader_config_snapshot", {}) == []
    assert _errors("dataloader_config_snapshot", {"custom": [1, "x"]}) == []


# --------------------------------------------------------------------------- core output

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _validate_folder(meta: Path) -> set[str]:
    names = set()
    for file in sorted(meta.glob("*.json")):
        _validate(file.stem, json.loads(file.read_text()))
        names.add(file.name)
    return names


def test_summarize_outputs_validate(tmp_path: Path) -> None:
    import shutil

    from gai_meta.summary import summarize

    summarize(FIXTURES / "example_config.yaml", out=tmp_path / "cfg")
    assert _validate_folder(tmp_path / "cfg" / "metadata") == {
        "model_summary.json",
        "model_parameters.json",
        "experiment_config.json",
        "dataloader_config_snapshot.json",
    }
    exp = tmp_path / "exp"
    shutil.copytree(FIXTURES / "tiny-experiment", exp)
    summarize(exp / "checkpoints" / "epoch_002.pt")  # no config: architecture from the weights
    assert _validate_folder(exp / "metadata") == {
        "model_summary.json",
        "model_parameters.json",
        "training_history.json",
    }
    summarize(exp / "checkpoints" / "epoch_002.pt", config=exp / "config.yaml")
    assert len(_validate_folder(exp / "metadata")) == 5


def test_summarize_in_experiment_writes_history(tmp_path: Path) -> None:
    import shutil

    from gai_meta.summary import summarize

    exp = tmp_path / "exp"
    shutil.copytree(FIXTURES / "tiny-experiment", exp)
    summarize(exp / "checkpoints" / "epoch_001.pt", config=exp / "config.yaml")
    # training_metrics.json as written by the fixture; epoch 1's empty coco_metrics dropped
    assert json.loads((exp / "metadata" / "training_history.json").read_text()) == [
        {"epoch": 1, "train_loss": 0.140682, "val_loss": 0.023325},
        {
            "epoch": 2,
            "train_loss": 0.140548,
            "val_loss": 0.023516,
            "coco_metrics": {
                "mAP": 0.0012,
                "mAP_50": 0.0043,
                "mAP_75": 0.0004,
                "mAP_small": 0.0,
                "mAP_medium": 0.0009,
                "mAP_large": 0.0021,
            },
        },
    ]


def test_summarize_with_corrupt_metrics_still_writes_model_files(tmp_path: Path) -> None:
    import shutil

    from gai_meta.summary import summarize

    exp = tmp_path / "exp"
    shutil.copytree(FIXTURES / "tiny-experiment", exp)
    (exp / "checkpoints" / "training_metrics.json").write_text("[{")
    result = summarize(exp / "checkpoints" / "epoch_001.pt")
    assert "training_history.json" not in result.written
    notes = result.documents["model_summary.json"]["notes"]
    assert any("training history not written" in n and "is not valid JSON" in n for n in notes)


def test_generate_metadata_outputs_validate(tmp_path: Path) -> None:
    from torch import nn

    import gai_meta

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    gai_meta.generate_metadata(
        model, tmp_path, config={"dataloader": {"batch_size": 2}}, input_shape=(1, 4)
    )
    gai_meta.record_epoch(tmp_path, epoch=1, train_loss=0.5)
    assert len(_validate_folder(tmp_path / "metadata")) == 5


def test_model_summary_schema_rejects() -> None:
    assert _errors("model_summary", {"schema_version": 1}) != []
    assert any(
        "is not of type 'integer'" in m
        for m in _errors("model_parameters", {"total_parameters": 1.5})
    )
