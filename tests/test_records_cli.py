"""history / diff / compare / schema through the CLI: exit codes, stdout, files written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from records_helpers import make_experiment, summary
from typer.testing import CliRunner

from gai_meta.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables at 80 columns otherwise


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _metrics(exp: Path, entries: list[dict[str, object]]) -> None:
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "checkpoints" / "training_metrics.json").write_text(json.dumps(entries))


# --------------------------------------------------------------------------- history


def test_history_writes_file_and_prints_table(tmp_path: Path) -> None:
    exp = tmp_path / "run"
    _metrics(
        exp,
        [
            {"epoch": 2, "train_loss": 0.5, "val_loss": 0.25, "coco_metrics": {"mAP": 0.5}},
            {"epoch": 1, "train_loss": 1.0, "val_loss": 0.75},
        ],
    )
    code, out, err = run("history", str(exp))
    assert (code, err) == (0, "")
    target = exp / "metadata" / "training_history.json"
    assert json.loads(target.read_text()) == [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 0.75},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.25, "coco_metrics": {"mAP": 0.5}},
    ]
    assert "Training history of" in out and "(2 epochs, from" in out
    assert "coco mAP" in out and "best val" in out
    # shared scale 0.25..1.0; train 1.0 -> █, 0.5 -> round(0.25/0.75*7)=2 -> ▃
    assert "train █▃" in out
    # val 0.75 -> round(0.5/0.75*7)=round(4.67)=5 -> ▆, 0.25 -> ▁
    assert "val   ▆▁" in out
    assert f"wrote {target}" in out


def test_history_out_and_json(tmp_path: Path) -> None:
    exp = tmp_path / "run"
    _metrics(exp, [{"epoch": 1, "train_loss": 1.0, "val_loss": None}])
    code, out, _ = run("history", str(exp / "checkpoints"), "--out", str(tmp_path / "o"), "--json")
    assert code == 0
    assert json.loads(out) == [{"epoch": 1, "train_loss": 1.0, "val_loss": None}]
    assert (tmp_path / "o" / "metadata" / "training_history.json").is_file()
    assert not (exp / "metadata").exists()
    code, out, _ = run("history", str(exp), "--quiet")
    assert (code, out) == (0, "")


def test_history_warns_about_skipped_checkpoints(tmp_path: Path) -> None:
    import torch

    ck = tmp_path / "run" / "checkpoints"
    ck.mkdir(parents=True)
    torch.save({"epoch": 1, "train_loss": 0.5, "val_loss": 0.6}, ck / "epoch_001.pt")
    torch.save({"model_state_dict": {}}, ck / "epoch_002.pt")
    code, out, err = run("history", str(tmp_path / "run"))
    assert code == 0
    assert err == f"gai-meta: warning: skipped {ck / 'epoch_002.pt'}: no 'epoch' field\n"
    assert "(1 epochs, from" in out


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("file", "is a file, expected an experiment folder"),
        ("empty", "holds neither checkpoints/training_metrics.json"),
        ("corrupt", "is not valid JSON"),
    ],
)
def test_history_errors_exit_2(tmp_path: Path, setup: str, needle: str) -> None:
    target = tmp_path / "run"
    if setup == "file":
        target.write_text("x")
    elif setup == "empty":
        target.mkdir()
    else:
        (target / "checkpoints").mkdir(parents=True)
        (target / "checkpoints" / "training_metrics.json").write_text("[{")
    code, out, err = run("history", str(target))
    assert code == 2 and out == ""
    assert err.startswith("gai-meta: error: ") and needle in err and err.count("\n") == 1
    assert not (target / "metadata").exists() if target.is_dir() else True


# --------------------------------------------------------------------------- diff


def test_diff_identical_exit_0(tmp_path: Path) -> None:
    a, b = make_experiment(tmp_path, "a"), make_experiment(tmp_path, "b")
    code, out, _ = run("diff", str(a), str(b / "metadata"))
    assert code == 0
    assert out.splitlines()[-1] == (
        "identical (totals, model, output_shapes, parameter_groups, trainer_config, "
        "dataloader, losses)"
    )


def test_diff_different_exit_1(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a", files={"model_summary.json": summary(total=1000)})
    b = make_experiment(tmp_path, "b", files={"model_summary.json": summary(total=2000)})
    code, out, _ = run("diff", str(a), str(b))
    assert code == 1
    assert "total_parameters" in out and "1,000" in out and "2,000" in out
    # total 1000 vs 2000 -> total, trainable differ; size 0.0038 vs 0.0076 MB -> 0.00 vs 0.01
    assert out.splitlines()[-1] == "3 differences in 1 of 3 sections"
    code, out, _ = run(
        "diff",
        str(a / "metadata" / "model_summary.json"),
        str(b / "metadata" / "model_summary.json"),
        "--format",
        "json",
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["identical"] is False
    assert doc["sections"]["totals"]["changes"][0] == {
        "key": "total_parameters",
        "a": 1000,
        "b": 2000,
    }


def test_diff_shows_markup_like_values_verbatim(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a", files={"dataloader_config_snapshot.json": {"x": "[red]"}})
    b = make_experiment(tmp_path, "b", files={"dataloader_config_snapshot.json": {"x": "[b]z"}})
    code, out, _ = run("diff", str(a), str(b))
    assert code == 1
    assert "[red]" in out and "[b]z" in out


def test_diff_without_metadata_exit_2(tmp_path: Path) -> None:
    a = make_experiment(tmp_path, "a")
    (tmp_path / "empty").mkdir()
    code, _, err = run("diff", str(a), str(tmp_path / "empty"))
    assert code == 2 and "holds no gai-meta metadata" in err


# --------------------------------------------------------------------------- compare


def test_compare_formats(tmp_path: Path) -> None:
    make_experiment(tmp_path, "a")
    make_experiment(tmp_path, "b", files={"model_summary.json": summary(total=5000)})
    (tmp_path / "not-an-experiment").mkdir()
    code, out, err = run("compare", str(tmp_path / "*"), "--format", "csv")
    assert code == 0
    junk = tmp_path / "not-an-experiment"
    assert err == f"gai-meta: warning: skipped {junk}: holds no gai-meta metadata\n"
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["name"], r["total_parameters"], r["best_epoch"]) for r in rows] == [
        ("a", "1000", "2"),
        ("b", "5000", ""),
    ]
    assert rows[0]["input_shape"] == "1x3x320x320"
    code, out, _ = run("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json")
    doc = json.loads(out)
    assert doc["schema_version"] == 1
    assert [e["parameter_size_mb"] for e in doc["experiments"]] == [0.0, 0.02]  # 5000*4/2**20
    code, out, _ = run("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 0
    header, first = out.splitlines()[:2]
    assert header.split() == [
        "experiment",
        "params",
        "MB",
        "input",
        "lr",
        "epochs",
        "best",
        "val",
        "at",
        "epoch",
    ]
    assert first.split() == ["a", "1,000", "0", "1x3x320x320", "0.001", "3/10", "0.4", "2"]


def test_compare_errors(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    code, _, err = run("compare", str(tmp_path / "j*"))
    assert code == 2 and "no experiment with metadata among the paths given" in err
    code, _, err = run("compare", str(tmp_path / "junk"))
    assert code == 2 and "no experiment with metadata among the paths given" in err
    code, _, err = run("compare", str(tmp_path / "q*"))
    assert code == 2 and "no path matches" in err
    make_experiment(tmp_path, "a")
    code, _, err = run("compare", str(tmp_path / "a"), str(tmp_path / "missing"))
    assert code == 2 and "missing: no such file or folder" in err


# --------------------------------------------------------------------------- schema


def test_schema_command() -> None:
    code, out, _ = run("schema", "training_history")
    assert code == 0 and json.loads(out)["type"] == "array"
    code, out, _ = run("schema", "experiment_config.json")
    assert json.loads(out)["title"] == "experiment_config.json"
    code, out, _ = run("schema", "--list")
    assert "training_history" in out.split()
    code, out, _ = run("schema")
    assert "dataloader_config_snapshot.json" in json.loads(out)
    code, _, err = run("schema", "nope")
    assert code == 2 and "no schema named 'nope'; choose one of" in err
