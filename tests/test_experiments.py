"""Experiment records: loading metadata, compare rows and diffs from hand-written folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from records_helpers import make_experiment, parameters, summary, trainer

from gai_meta.errors import SourceError
from gai_meta.experiments import (
    Change,
    CompareRow,
    compare_experiments,
    compare_row,
    diff_experiments,
    expand_experiment_paths,
    load_experiment,
)

ROOT = Path(__file__).resolve().parents[1]


def test_load_from_experiment_metadata_folder_or_summary(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, "run-a")
    for path in (exp, exp / "metadata"):
        rec = load_experiment(path)
        assert rec.name == "run-a"
        assert rec.metadata_dir == exp / "metadata"
        assert rec.summary is not None and rec.summary["total_parameters"] == 1000
        assert rec.parameters is not None and rec.dataloader == {
            "batch_size": 8,
            "augmentations": [{"type": "Flip"}],
        }
        assert rec.trainer_config["num_epochs"] == 10
        assert rec.history is not None and [e.epoch for e in rec.history] == [1, 2, 3]
    only = load_experiment(exp / "metadata" / "model_summary.json")
    assert only.name == "run-a"
    assert only.parameters is None and only.history is None and only.summary is not None


def test_history_falls_back_to_training_metrics(tmp_path: Path) -> None:
    exp = make_experiment(
        tmp_path,
        "e",
        files={"model_summary.json": summary()},
        metrics=[{"epoch": 2, "train_loss": 2.0, "val_loss": 1.5}],
    )
    rec = load_experiment(exp)
    assert rec.history is not None and [e.val_loss for e in rec.history] == [1.5]


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "no such file or folder"),
        ("empty-folder", "holds no gai-meta metadata"),
        ("corrupt", "is not valid JSON"),
        ("list", "expected a JSON object, found list"),
        ("not-summary", "is not a model_summary.json (no 'total_parameters')"),
        ("bad-history", "entry 0: has no 'epoch'"),
    ],
)
def test_load_errors(tmp_path: Path, setup: str, needle: str) -> None:
    target = tmp_path / "x"
    if setup == "empty-folder":
        (target / "metadata").mkdir(parents=True)
    elif setup == "corrupt":
        make_experiment(tmp_path, "x", files={"model_summary.json": {}})
        (target / "metadata" / "model_summary.json").write_text("{")
    elif setup == "list":
        make_experiment(tmp_path, "x", files={"model_parameters.json": [1]})
    elif setup == "not-summary":
        target = tmp_path / "s.json"
        target.write_text('{"a": 1}')
    elif setup == "bad-history":
        make_experiment(tmp_path, "x", files={"training_history.json": [{"loss": 1}]})
    with pytest.raises(SourceError) as info:
        load_experiment(target)
    assert needle in str(info.value)
    assert info.value.exit_code == 2


def test_compare_row(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, "run-a")
    assert compare_row(load_experiment(exp)) == CompareRow(
        name="run-a",
        path=str(exp),
        total_parameters=1000,
        trainable_parameters=1000,
        parameter_size_mb=0.0,  # 1000 * 4 / 2**20 = 0.0038 -> 0.00
        input_shape=[1, 3, 320, 320],
        learning_rate=0.001,
        epochs=3,
        num_epochs=10,
        best_val_loss=0.4,  # epoch 2 has the lowest val_loss (0.9, 0.4, 0.6)
        best_epoch=2,
        last_val_loss=0.6,
    )


def test_compare_row_with_summary_only(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, "s", files={"model_summary.json": summary(learning_rate=0.02)})
    row = compare_row(load_experiment(exp))
    # learning rate from the summary when there is no experiment_config.json
    assert (row.learning_rate, row.epochs, row.num_epochs, row.best_epoch) == (
        0.02,
        None,
        None,
        None,
    )


def test_compare_experiments_keeps_order(tmp_path: Path) -> None:
    b = make_experiment(tmp_path, "b")
    a = make_experiment(tmp_path, "a")
    assert [r.name for r in compare_experiments([b, a])] == ["b", "a"]


def test_expand_globs(tmp_path: Path) -> None:
    make_experiment(tmp_path, "exp-2")
    make_experiment(tmp_path, "exp-1")
    (tmp_path / "exp-junk").mkdir()
    found, skipped = expand_experiment_paths(
        [str(tmp_path / "exp-*"), str(tmp_path / "exp-1")]  # exp-1 twice: kept once
    )
    assert found == [tmp_path / "exp-1", tmp_path / "exp-2"]
    assert skipped == [tmp_path / "exp-junk"]
    # as the shell would expand it: the same result
    names = ["exp-1", "exp-2", "exp-junk"]
    assert expand_experiment_paths([str(tmp_path / n) for n in names]) == (found, skipped)
    with pytest.raises(SourceError, match="no such file or folder"):
        expand_experiment_paths([str(tmp_path / "nope")])
    with pytest.raises(SourceError, match="no path matches"):
        expand_experiment_paths([str(tmp_path / "zzz*")])


def test_diff_identical(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a")
    b = make_experiment(tmp_path, "b")
    d = diff_experiments(a, b)
    assert d.identical
    # artifact_dir is left out: it names the experiment, it is not a setting
    assert [s.name for s in d.sections] == [
        "totals",
        "model",
        "output_shapes",
        "parameter_groups",
        "trainer_config",
        "dataloader",
        "losses",
    ]
    # totals: 5 keys; output_shapes: 2 shapes; groups: 2 types x 3 fields; trainer: 14 - 1
    assert {s.name: s.compared for s in d.sections}["totals"] == 5
    assert {s.name: s.compared for s in d.sections}["output_shapes"] == 2
    assert {s.name: s.compared for s in d.sections}["parameter_groups"] == 6
    assert {s.name: s.compared for s in d.sections}["trainer_config"] == 13
    assert d.to_json()["identical"] is True


def test_diff_changes(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a")
    b = make_experiment(
        tmp_path,
        "b",
        files={
            "model_summary.json": summary(
                total=1100, output_shapes=[[1, 2, 40, 40, 15]], learning_rate=1
            ),
            "model_parameters.json": parameters(
                {"Conv2d": (2, 1000, 1000), "BatchNorm2d": (2, 100, 100), "Linear": (1, 0, 0)}
            ),
            "experiment_config.json": {
                "schema_version": 1,
                "trainer_config": trainer(learning_rate=1, scheduler_params={"eta": 0.1}),
            },
            "dataloader_config_snapshot.json": {
                "batch_size": 8,
                "augmentations": [{"type": "Crop"}],
            },
            "training_history.json": [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9}],
        },
    )
    d = diff_experiments(a, b)
    assert not d.identical
    changes = {s.name: s.changes for s in d.sections}
    assert changes["totals"] == (
        Change("total_parameters", 1000, 1100),
        Change("trainable_parameters", 1000, 1100),
    )  # 1100*4/2**20 = 0.0042 -> 0.00 MB: size unchanged
    assert changes["model"] == ()
    assert changes["output_shapes"] == (Change("[1]", [1, 2, 20, 20, 15], None, True, False),)
    assert changes["parameter_groups"] == (
        Change("Conv2d.total_params", 900, 1000),
        Change("Conv2d.trainable_params", 900, 1000),
        Change("Linear.count", None, 1, False, True),
        Change("Linear.total_params", None, 0, False, True),
        Change("Linear.trainable_params", None, 0, False, True),
    )
    assert changes["trainer_config"] == (
        Change("learning_rate", 0.001, 1),
        Change("scheduler_params", {}, None, True, False),
        Change("scheduler_params.eta", None, 0.1, False, True),
    )
    assert changes["dataloader"] == (Change("augmentations[0].type", "Flip", "Crop"),)
    assert changes["losses"] == (
        Change("epochs", 3, 1),
        Change("best_val_loss", 0.4, 0.9),
        Change("best_epoch", 2, 1),
        Change("last_epoch", 3, 1),
        Change("last_train_loss", 0.3, 1.0),
        Change("last_val_loss", 0.6, 0.9),
    )
    doc = d.to_json()
    assert doc["sections"]["output_shapes"]["changes"] == [{"key": "[1]", "a": [1, 2, 20, 20, 15]}]


def test_diff_one_side_without_a_file(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a", files={"model_summary.json": summary()})
    b = make_experiment(
        tmp_path,
        "b",
        files={"model_summary.json": summary(), "dataloader_config_snapshot.json": {"x": 1}},
    )
    d = diff_experiments(a, b)
    assert [s.name for s in d.sections] == ["totals", "model", "output_shapes", "dataloader"]
    assert d.sections[-1].changes == (Change("x", None, 1, False, True),)


def test_numbers_compare_by_value(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a", files={"model_summary.json": summary(buffer_size_mb=1)})
    b = make_experiment(tmp_path, "b", files={"model_summary.json": summary(buffer_size_mb=1.0)})
    assert diff_experiments(a, b).identical


def test_module_does_not_import_torch() -> None:
    code = "import sys, gai_meta.experiments; sys.exit('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_to_json_round_trips(tmp_path: Path) -> None:
    row = compare_row(load_experiment(make_experiment(tmp_path, "a")))
    assert json.loads(json.dumps(row.to_json()))["best_epoch"] == 2
