"""Config loading and the training system's resolution rules, against the real configs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from gai_meta.config import (
    TRAINER_CONFIG_KEYS,
    LoadedConfig,
    dataloader_snapshot,
    experiment_config_document,
    file_sha256,
    load_config,
    load_config_mapping,
    require_model_section,
    resolve_artifact_dir,
    resolve_trainer_config,
    runtime_info,
    training_settings,
)
from gai_meta.errors import ConfigError

REF = Path("/work/shared/reference/configs")
pytestmark = pytest.mark.skipif(not REF.is_dir(), reason="reference configs not available")

# Worked out by hand from each YAML file and the reference's defaults.
EXPECTED_TRAINER: dict[str, dict[str, Any]] = {
    "config.yaml": {
        "num_epochs": 100,
        "learning_rate": 0.0001,
        "weight_decay": 0.00001,
        "device": "auto",  # not set -> default
        "gradient_clip_norm": 10.0,
        "log_interval": 10,
        "checkpoint_interval": 1,
        "optimizer": "adamw",  # not set -> default
        "scheduler": None,
        "scheduler_params": {},
        "assigner_params": {},  # no experiment.assigner
        "artifact_dir": "experiments/gai-yolov12-experiment-001",
        "enable_tensorboard": True,
        "tensorboard_log_interval": 10,
    },
    "config_augs.yaml": {
        "num_epochs": 50,
        "learning_rate": 0.001,
        "weight_decay": 0.0001,
        "device": "auto",
        "gradient_clip_norm": None,  # not set
        "log_interval": 10,  # not set -> default 10
        "checkpoint_interval": 5,  # not set -> default 5
        "optimizer": "adamw",
        "scheduler": None,
        "scheduler_params": {},
        "assigner_params": {},
        # "GAI-YOLOv12-Experiment-001" lower-cased
        "artifact_dir": "experiments/gai-yolov12-experiment-001",
        "enable_tensorboard": True,
        "tensorboard_log_interval": 10,
    },
    "config_large_003.yaml": {
        "num_epochs": 100,
        "learning_rate": 0.0001,
        "weight_decay": 0.001,
        "device": "auto",
        "gradient_clip_norm": 10.0,
        "log_interval": 10,
        "checkpoint_interval": 2,
        "optimizer": "adamw",
        "scheduler": "cosine_warmup",
        "scheduler_params": {"warmup_epochs": 5, "warmup_bias_lr": 0.01, "eta_min": 0.000001},
        "assigner_params": {},
        "artifact_dir": "experiments/gai-yolov12-large-experiment-003",
        "enable_tensorboard": True,
        "tensorboard_log_interval": 10,
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TRAINER))
def test_trainer_config_of_real_configs(name: str) -> None:
    cfg = load_config(REF / name)
    got = resolve_trainer_config(cfg)
    assert got == EXPECTED_TRAINER[name]
    assert tuple(got) == TRAINER_CONFIG_KEYS
    assert resolve_artifact_dir(cfg) == Path(EXPECTED_TRAINER[name]["artifact_dir"])


def test_loaded_config_fields() -> None:
    path = REF / "config.yaml"
    cfg = load_config(path)
    assert cfg.path == path
    # sha256 checked against the system tool, not our own function
    expected = subprocess.run(
        ["sha256sum", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert cfg.sha256 == expected
    assert file_sha256(path) == expected
    assert list(cfg.data) == ["dataset", "model", "dataloader", "experiment"]
    assert cfg.section("model")["backbone_params"] == {"base_channels": 64, "depth": 3}
    assert cfg.section("nonexistent") == {}
    assert cfg.has_section("model") and not cfg.has_section("nonexistent")
    assert require_model_section(cfg)["num_classes"] == 10


def test_dataloader_snapshot_exactly_as_written() -> None:
    cfg = load_config(REF / "config_large_003.yaml")
    assert dataloader_snapshot(cfg) == {
        "batch_size": 128,
        "num_workers": 20,
        "prefetch_factor": 4,
        "persistent_workers": False,
        "pin_memory": True,
        "augmentation": True,
        "augmentation_strategies": ["RandomHorizontalFlip", "ColorJitter"],
        "augmentation_probabilities_per_batch": 0.05,
        "augmentations": [
            {"type": "RandomHorizontalFlip", "probability": 0.5},
            {
                "type": "ColorJitter",
                "brightness": 0.2,
                "contrast": 0.2,
                "saturation": 0.2,
                "hue": 0.1,
            },
        ],
    }
    augs = dataloader_snapshot(load_config(REF / "config_augs.yaml"))
    assert augs["augmentation_probabilities_per_batch"] == 0.4
    assert [a["type"] for a in augs["augmentations"]] == [
        "RandomHorizontalFlip",
        "RandomCrop",
        "ColorJitter",
        "NoiseInjection",
        "RandomRotation",
        "Cutout",
        "MixUp",
        "CutMix",
        "MotionBlur",
    ]
    assert dataloader_snapshot({}) == {}
    # a copy: changing the snapshot does not change the config
    snap = dataloader_snapshot(cfg)
    snap["batch_size"] = 1
    assert cfg.section("dataloader")["batch_size"] == 128


def test_training_settings() -> None:
    assert training_settings(None) == {
        "device": None,
        "optimizer": None,
        "scheduler": None,
        "learning_rate": None,
        "weight_decay": None,
    }
    import torch

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert training_settings(load_config(REF / "config_large_003.yaml")) == {
        "device": auto,
        "optimizer": "adamw",
        "scheduler": "cosine_warmup",
        "learning_rate": 0.0001,
        "weight_decay": 0.001,
    }
    assert training_settings({"experiment": {"device": "cpu", "optimizer": "sgd"}}) == {
        "device": "cpu",
        "optimizer": "sgd",
        "scheduler": None,
        "learning_rate": 0.001,
        "weight_decay": 0.0,
    }


def test_defaults_for_empty_config() -> None:
    assert resolve_trainer_config({}) == {
        "num_epochs": 1,
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
        "artifact_dir": "experiments/default-experiment",
        "enable_tensorboard": True,
        "tensorboard_log_interval": 10,
    }


def test_tensorboard_log_interval_follows_log_interval() -> None:
    got = resolve_trainer_config({"experiment": {"log_interval": 7}})
    assert (got["log_interval"], got["tensorboard_log_interval"]) == (7, 7)
    got = resolve_trainer_config(
        {"experiment": {"log_interval": 7, "tensorboard": {"enabled": False, "log_interval": 3}}}
    )
    assert (got["enable_tensorboard"], got["tensorboard_log_interval"]) == (False, 3)


def test_assigner_params_from_experiment_assigner() -> None:
    got = resolve_trainer_config({"experiment": {"assigner": {"topk": 10, "alpha": 0.5}}})
    assert got["assigner_params"] == {"topk": 10, "alpha": 0.5}


@pytest.mark.parametrize(
    ("experiment", "expected"),
    [
        ({}, "experiments/default-experiment"),
        ({"name": None}, "experiments/default-experiment"),
        ({"name": "My Run_01"}, "experiments/my-run-01"),
        ({"name": "A  B__C"}, "experiments/a--b--c"),  # each space/underscore becomes one "-"
        ({"name": "x", "artifact_dir": "/data/runs/x"}, "/data/runs/x"),
        ({"artifact_dir": "out/run"}, "out/run"),
        ({"name": "x", "artifact_dir": None}, "experiments/x"),
    ],
)
def test_artifact_dir_rule(experiment: dict[str, Any], expected: str) -> None:
    assert resolve_artifact_dir({"experiment": experiment}) == Path(expected)
    assert resolve_trainer_config({"experiment": experiment})["artifact_dir"] == expected


@pytest.mark.parametrize(
    ("experiment", "needle"),
    [
        (
            {"learning_rate": "fast"},
            "experiment.learning_rate is the text 'fast', expected a number",
        ),
        ({"learning_rate": "1e-3"}, "write 1.0e-3"),
        ({"learning_rate": True}, "experiment.learning_rate is the boolean true"),
        ({"learning_rate": 0}, "experiment.learning_rate is 0, expected a number greater than 0"),
        ({"learning_rate": float("nan")}, "experiment.learning_rate"),
        ({"weight_decay": -1.0}, "experiment.weight_decay is -1.0, expected a number 0 or more"),
        ({"weight_decay": [1]}, "experiment.weight_decay is a list"),
        ({"num_epochs": 2.5}, "experiment.num_epochs is the number 2.5, expected a whole number"),
        ({"num_epochs": 0}, "experiment.num_epochs is 0, expected at least 1"),
        ({"log_interval": "10"}, "experiment.log_interval is the text '10'"),
        ({"checkpoint_interval": False}, "experiment.checkpoint_interval is the boolean false"),
        ({"gradient_clip_norm": "10"}, "experiment.gradient_clip_norm is the text '10'"),
        ({"gradient_clip_norm": -1}, "experiment.gradient_clip_norm is the number -1"),
        ({"device": 0}, "experiment.device is the number 0"),
        (
            {"optimizer": "adam"},
            "experiment.optimizer is the text 'adam', expected one of adamw, sgd",
        ),
        ({"scheduler": 3}, "experiment.scheduler is the number 3, expected text or null"),
        ({"scheduler_params": [1, 2]}, "experiment.scheduler_params is a list, expected a mapping"),
        ({"assigner": "simota"}, "experiment.assigner is the text 'simota', expected a mapping"),
        ({"tensorboard": True}, "experiment.tensorboard is the boolean true, expected a mapping"),
        ({"tensorboard": {"enabled": "yes"}}, "experiment.tensorboard.enabled is the text 'yes'"),
        ({"tensorboard": {"log_interval": 0}}, "experiment.tensorboard.log_interval is 0"),
        ({"artifact_dir": 5}, "experiment.artifact_dir is the number 5"),
        ({"name": 7}, "experiment.name is the number 7"),
        ({"name": "../etc"}, "would make a folder outside ./experiments"),
    ],
)
def test_invalid_values_name_the_setting(experiment: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_trainer_config({"experiment": experiment})
    assert needle in str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_invalid_value_in_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("experiment:\n  learning_rate: 1e-3\n")
    cfg = load_config(path)
    assert cfg.data["experiment"]["learning_rate"] == "1e-3"  # PyYAML's YAML 1.1 reading
    with pytest.raises(ConfigError, match=r"c\.yaml: experiment\.learning_rate is the text"):
        resolve_trainer_config(cfg)


def test_optimizer_case_is_kept() -> None:
    assert resolve_trainer_config({"experiment": {"optimizer": "SGD"}})["optimizer"] == "SGD"


def test_experiment_section_not_mapping() -> None:
    with pytest.raises(ConfigError, match="section 'experiment' is a list"):
        resolve_trainer_config({"experiment": [1]})
    with pytest.raises(ConfigError, match="section 'dataloader' is the text 'x'"):
        dataloader_snapshot({"dataloader": "x"})


# --------------------------------------------------------------------------- loading errors


def _err(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(str(path) + ": ")
    assert "\n" not in msg
    assert info.value.exit_code == 2
    return msg


def test_missing_file(tmp_path: Path) -> None:
    assert "config file not found" in _err(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    assert "is a folder, expected a YAML config file" in _err(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert "config file is empty" in _err(path)


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  num_classes: 10\n  input_size: [640, 640\nexperiment: {}\n")
    msg = _err(path)
    # the unclosed flow sequence is detected at line 4, column 11 (the ':' after 'experiment')
    assert "invalid YAML at line 4, column 11" in msg
    assert "fix the syntax there" in msg


def test_tab_indentation(tmp_path: Path) -> None:
    path = tmp_path / "tab.yaml"
    path.write_text("model:\n\tnum_classes: 10\n")
    assert "invalid YAML at line 2, column 1" in _err(path)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "a list"), ("just text\n", "the text 'just text'"), ("42\n", "the number 42")],
)
def test_top_level_not_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert f"top level is {kind}, expected a mapping of sections" in _err(path)


def test_multiple_documents(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n---\nb: 2\n")
    assert "invalid YAML at line 2" in _err(path)


def test_python_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    assert "invalid YAML at line 1, column 8" in _err(path)


def test_binary_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  blob: !!binary aGVsbG8=\n")
    assert "'model.blob' holds a bytes, which cannot be recorded as JSON" in _err(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"model: \xff\xfe\x00garbage\x80\n")
    assert "invalid YAML" in _err(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    try:
        assert "cannot read config: Permission denied" in _err(path)
    finally:
        path.chmod(0o644)


def _bomb(levels: int) -> str:
    # Each level is a list of 9 aliases to the previous one: 9**levels leaves when expanded.
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast_and_flat(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 9**9 = 387,420,489 leaves: gigabytes if expanded
    tracemalloc.start()
    start = time.perf_counter()
    msg = _err(path)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "alias bomb" in msg and "refused without expanding it" in msg
    assert elapsed < 1.0
    assert peak < 5 * 2**20  # the graph is ~100 nodes; expanding it would need gigabytes


def test_moderate_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    # 9**3 = 729 leaves expanded: far under the limit, and a normal use of anchors
    path.write_text(_bomb(3) + "base: &base {lr: 0.1}\nexperiment:\n  <<: *base\n  name: m\n")
    cfg = load_config(path)
    assert len(cfg.data["a3"]) == 9 and cfg.data["a3"][0][0][0] == ["lol"]  # a3 -> a2 -> a1 -> a0
    assert cfg.data["experiment"] == {"lr": 0.1, "name": "m"}


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.yaml"
    path.write_text("a: &x [1, *x]\n")
    assert "recursive structure" in _err(path)


def test_require_model_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("experiment: {name: x}\n")
    cfg = load_config(path)
    with pytest.raises(ConfigError, match=r"c\.yaml: config has no 'model' section"):
        require_model_section(cfg)
    with pytest.raises(ConfigError, match="section 'model' is a list"):
        require_model_section(load_config_mapping({"model": [1, 2]}))
    with pytest.raises(ConfigError, match="no 'model' section"):
        require_model_section(load_config_mapping({"model": None}))


def test_load_config_mapping() -> None:
    source = {"experiment": {"name": "m", "scheduler_params": {"a": 1}}}
    cfg = load_config_mapping(source)
    assert cfg == LoadedConfig(path=None, data=source, sha256=None)
    source["experiment"]["scheduler_params"]["a"] = 2  # deep copy: no leak
    assert cfg.data["experiment"]["scheduler_params"] == {"a": 1}
    with pytest.raises(ConfigError, match="config must be a mapping of sections"):
        load_config_mapping([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'x' holds a object"):
        load_config_mapping({"x": object()})


# --------------------------------------------------------------------------- runtime + document


def test_runtime_info(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime_info("auto") == {
        "device_used": "cpu",
        "cuda_available": False,
        "cuda_device_count": 0,
    }
    assert runtime_info("cuda:1")["device_used"] == "cuda:1"  # recorded as given
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime_info("auto") == {
        "device_used": "cuda",
        "cuda_available": True,
        "cuda_device_count": 2,
    }
    assert runtime_info("cpu")["device_used"] == "cpu"


def test_experiment_config_document_outside_git(tmp_path: Path) -> None:
    import platform

    import torch

    import gai_meta

    path = tmp_path / "config.yaml"
    shutil.copy(REF / "config_large_003.yaml", path)
    ckpt = tmp_path / "epoch_001.pt"
    ckpt.write_bytes(b"0123456789")
    doc = experiment_config_document(load_config(path), checkpoint=ckpt)
    assert list(doc) == ["schema_version", "trainer_config", "runtime_info", "config", "provenance"]
    assert doc["schema_version"] == 1
    assert doc["trainer_config"] == EXPECTED_TRAINER["config_large_003.yaml"]
    assert doc["config"]["experiment"]["name"] == "gai-yolov12-large-experiment-003"
    assert set(doc["runtime_info"]) == {"device_used", "cuda_available", "cuda_device_count"}
    prov = doc["provenance"]
    assert prov == {
        "gai_meta_version": gai_meta.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "config_path": str(path.resolve()),
        "config_sha256": file_sha256(path),
        "checkpoint_path": str(ckpt.resolve()),
        # sha256(b"0123456789"), from `printf 0123456789 | sha256sum`
        "checkpoint_sha256": "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882",
        "git_commit": None,  # tmp_path is not inside a git repository
    }


def test_experiment_config_document_in_memory() -> None:
    doc = experiment_config_document(load_config_mapping({"experiment": {"device": "cpu"}}))
    assert doc["runtime_info"]["device_used"] == "cpu"
    prov = doc["provenance"]
    assert (
        prov["config_path"],
        prov["config_sha256"],
        prov["checkpoint_path"],
        prov["checkpoint_sha256"],
        prov["git_commit"],
    ) == (None, None, None, None, None)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_commit_of_config_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "configs").mkdir(parents=True)
    cfg_path = repo / "configs" / "c.yaml"
    cfg_path.write_text("experiment: {name: g}\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    head = git("log", "-1", "--format=%H")
    doc = experiment_config_document(load_config(cfg_path))
    assert doc["provenance"]["git_commit"] == head
    # git missing from PATH -> null, no crash
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    doc = experiment_config_document(load_config(cfg_path))
    assert doc["provenance"]["git_commit"] is None


def test_config_module_does_not_import_torch() -> None:
    code = "import sys, gai_meta.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
