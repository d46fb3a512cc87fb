"""summarize / params end to end: counts and shapes worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gai_meta.models import build_model, model_config_from_mapping
from tests.helpers import gai_params, load, run

SEED_TOTAL = 485_340  # backbone 71,072 + head0 188,702 + head1 225,566 (reference)


def test_helper_formula_matches_reference_example() -> None:
    assert gai_params(32, 2, 128, 10, [2, 2]) == SEED_TOTAL


def test_summarize_seed_example(seed_config: Path, tmp_path: Path) -> None:
    result = run("summarize", seed_config, "--out", tmp_path / "exp", "-q")
    assert result.exit_code == 0, result.output
    meta = tmp_path / "exp" / "metadata"
    summary = load(meta / "model_summary.json")
    assert summary["total_parameters"] == SEED_TOTAL
    assert summary["trainable_parameters"] == SEED_TOTAL
    assert summary["parameter_size_mb"] == 1.85  # 485,340 * 4 / 2**20 = 1.851
    assert summary["input_shape"] == [1, 3, 320, 320]
    # stride-2 stages: 320 -> 160 -> 80; 2 anchors * (10 + 5) outputs
    assert summary["output_shapes"] == [[1, 2, 160, 160, 15], [1, 2, 80, 80, 15]]
    assert summary["model_architecture"] == "GAIYoloV12"
    assert summary["backbone_type"] == "TinyCSPBackbone"
    assert sum(d["parameters"] for d in summary["layer_details"]) == SEED_TOTAL
    # buffers: 10 BatchNorms with 2*c + 1 values (c = 32,32,32,64,64,64,128,128,128,128)
    # -> 2*(96+192+512) + 10 = 1,610, plus anchors 2 groups * 2 * 2 = 8
    assert summary["total_buffers"] == 1618
    bundle = summary["model_bundle_metadata"]
    assert bundle["strides"] == [8, 16] and bundle["num_classes"] == 10
    assert summary["learning_rate"] == 0.001 and summary["optimizer"] == "adamw"
    params = load(meta / "model_parameters.json")
    groups = params["parameter_groups"]
    assert sum(g["total_params"] for g in groups.values()) == SEED_TOTAL
    # BatchNorm2d: 2 * (96 + 192 + 512) = 1,600 parameters in 10 modules
    assert groups["BatchNorm2d"] == {
        "count": 10,
        "tensors": 20,
        "total_params": 1600,
        "trainable_params": 1600,
        "bytes": 6400,
    }
    assert sum(m["total_params"] for m in params["modules"].values()) == SEED_TOTAL
    assert load(meta / "dataloader_config_snapshot.json") == {"batch_size": 8, "num_workers": 2}
    assert load(meta / "experiment_config.json")["trainer_config"]["learning_rate"] == 0.001


@pytest.mark.parametrize(
    ("base", "depth", "hidden", "classes", "anchors", "size"),
    [(8, 1, 8, 1, [3], 32), (16, 3, 32, 4, [2, 3, 1], 96), (8, 4, 16, 2, [2, 2], 64)],
)
def test_counts_and_shapes_for_several_configs(
    tmp_path: Path, base: int, depth: int, hidden: int, classes: int, anchors: list[int], size: int
) -> None:
    groups = [[[10 + i, 10 + j] for j in range(a)] for i, a in enumerate(anchors)]
    strides = [8 * 2**i for i in range(len(anchors))]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: {{num_classes: {classes}, input_size: [{size}, {size}],"
        f" backbone_params: {{base_channels: {base}, depth: {depth}}},"
        f" head: {{hidden_channels: {hidden}}}, anchors: {groups}, strides: {strides}}}\n"
    )
    result = run("summarize", cfg, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    summary = load(tmp_path / "metadata" / "model_summary.json")
    assert summary["total_parameters"] == gai_params(base, depth, hidden, classes, anchors)
    # stage i halves the size i+1 times; heads use the last len(anchors) stages
    sizes = [size // 2 ** (i + 1) for i in range(depth)][-len(anchors) :]
    expected = [[1, a, s, s, classes + 5] for a, s in zip(anchors, sizes, strict=False)]
    assert summary["output_shapes"] == expected


def test_input_shape_override_and_meta_device(seed_config: Path, tmp_path: Path) -> None:
    result = run(
        "summarize",
        seed_config,
        "--out",
        tmp_path,
        "--input-shape",
        "2,3,64,96",
        "--device",
        "meta",
        "-q",
    )
    assert result.exit_code == 0, result.output
    summary = load(tmp_path / "metadata" / "model_summary.json")
    # 64x96 -> 32x48 -> 16x24
    assert summary["output_shapes"] == [[2, 2, 32, 48, 15], [2, 2, 16, 24, 15]]
    assert summary["probe_device"] == "meta"
    assert summary["total_parameters"] == SEED_TOTAL


def test_freezing_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "f.yaml"
    cfg.write_text(
        "model: {num_classes: 2, input_size: [32, 32], backbone_params: {base_channels: 8, depth: 3},"
        " head: {hidden_channels: 8}, freeze_backbone: true}\n"
    )
    result = run("summarize", cfg, "--out", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    summary = load(tmp_path / "metadata" / "model_summary.json")
    backbone = gai_params(8, 3, 8, 2, [])  # no heads: the backbone alone
    assert summary["total_parameters"] == gai_params(8, 3, 8, 2, [3, 3, 3])
    assert summary["non_trainable_parameters"] == backbone
    assert summary["trainable_parameters"] == summary["total_parameters"] - backbone


def _checkpoint(tmp_path: Path, cfg_text: str, name: str = "epoch_003.pt") -> Path:
    import yaml

    cfg = model_config_from_mapping(yaml.safe_load(cfg_text)["model"])
    torch.manual_seed(0)
    model = build_model(cfg)
    ckpt_dir = tmp_path / "exp" / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / name
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": {},
            "epoch": 3,
            "train_loss": 1.5,
            "val_loss": 2.0,
        },
        path,
    )
    return path


def test_checkpoint_without_config_infers_architecture(tmp_path: Path) -> None:
    from tests.conftest import SEED_CONFIG

    ckpt = _checkpoint(tmp_path, SEED_CONFIG)
    result = run("summarize", ckpt, "-q")
    assert result.exit_code == 0, result.output
    # default out: the experiment folder holding checkpoints/
    summary = load(tmp_path / "exp" / "metadata" / "model_summary.json")
    assert summary["total_parameters"] == SEED_TOTAL
    assert summary["input_shape"] == [1, 3, 640, 640]  # input size is not in a state dict
    assert summary["output_shapes"] == [[1, 2, 320, 320, 15], [1, 2, 160, 160, 15]]
    assert summary["source"]["checkpoint"]["epoch"] == 3
    assert not (tmp_path / "exp" / "metadata" / "experiment_config.json").exists()


def test_checkpoint_with_config(tmp_path: Path, seed_config: Path) -> None:
    from tests.conftest import SEED_CONFIG

    ckpt = _checkpoint(tmp_path, SEED_CONFIG)
    result = run("summarize", ckpt, "--config", seed_config, "-q")
    assert result.exit_code == 0, result.output
    meta = tmp_path / "exp" / "metadata"
    assert load(meta / "model_summary.json")["input_shape"] == [1, 3, 320, 320]
    provenance = load(meta / "experiment_config.json")["provenance"]
    assert provenance["checkpoint_path"] == str(ckpt.resolve())


def test_checkpoint_config_mismatch_is_exit_2(tmp_path: Path, tiny_config: Path) -> None:
    from tests.conftest import SEED_CONFIG

    ckpt = _checkpoint(tmp_path, SEED_CONFIG)
    result = run("summarize", ckpt, "--config", tiny_config, "-q")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and str(ckpt) in line
    assert "do not load strictly" in line and "shape mismatch" in line
    assert not (tmp_path / "exp" / "metadata").exists()


def test_params_json_groups(seed_config: Path) -> None:
    import orjson

    result = run("params", seed_config, "--group-by", "type", "--format", "json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["group_by"] == "type" and data["total_parameters"] == SEED_TOTAL
    by = {g["name"]: g["total_params"] for g in data["groups"]}
    assert by == {"Conv2d": SEED_TOTAL - 1600, "BatchNorm2d": 1600}


@pytest.mark.parametrize("by", ["layer", "depth", "dtype", "trainable"])
def test_params_csv_partitions(seed_config: Path, by: str) -> None:
    result = run("params", seed_config, "-g", by, "-f", "csv")
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in result.stdout.strip().splitlines()[1:]]
    assert sum(int(r[3]) for r in rows) == SEED_TOTAL


def test_params_bad_options(seed_config: Path) -> None:
    assert run("params", seed_config, "-g", "colour").exit_code == 2
    assert run("params", seed_config, "-f", "xml").exit_code == 2


def test_no_estimates_leaves_compute_and_memory_null(seed_config: Path, tmp_path: Path) -> None:
    result = run("summarize", seed_config, "--out", tmp_path, "-q", "--no-estimates")
    assert result.exit_code == 0, result.output
    summary = load(tmp_path / "metadata" / "model_summary.json")
    assert summary["compute"] is None and summary["memory_estimate"] is None
    assert any("--no-estimates" in note for note in summary["notes"])
    assert summary["total_parameters"] == SEED_TOTAL


def test_auto_device_sends_huge_inputs_to_meta(seed_config: Path, tmp_path: Path) -> None:
    # 1x3x40000x40000 float32 is 19.2 GB: never allocated, the probe runs on meta
    result = run(
        "summarize",
        seed_config,
        "--out",
        tmp_path,
        "-q",
        "--no-estimates",
        "--input-shape",
        "1,3,40000,40000",
    )
    assert result.exit_code == 0, result.output
    summary = load(tmp_path / "metadata" / "model_summary.json")
    assert summary["probe_device"] == "meta"
    # 40000 -> 20000 -> 10000 after the two stride-2 stages
    assert summary["output_shapes"] == [[1, 2, 20000, 20000, 15], [1, 2, 10000, 10000, 15]]
