"""Tests of gai_meta.models: architecture, config parsing, registries, freezing, inference.

Every expected count is worked out by hand from the reference architecture, with the
arithmetic in a comment. The rules used (independent of the code under test):

- ConvBlock(cin, cout, k):      cin*cout*k*k (conv, no bias) + 2*cout (BN weight+bias)
- ResidualBlock(c):             ConvBlock(c, c, 1) + ConvBlock(c, c, 3)
- backbone stage i (c = base*2^i, prev = input_channels or the previous c):
                                ConvBlock(prev, c, 3) + ResidualBlock(c)
- head(cin, A, nc, h):          cin*h*9 + 2h + h*h*9 + 2h + h*A*(nc+5) + A*(nc+5)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from gai_meta.errors import ConfigError, ModelBuildError
from gai_meta.models import (
    DEFAULT_ANCHORS,
    DetectionScaleOutput,
    GaiYoloConfig,
    GAIYoloV12,
    TinyCSPBackbone,
    apply_freezing,
    build_model,
    default_strides,
    get_backbone,
    get_model_family,
    infer_config_from_state_dict,
    known_backbones,
    known_model_families,
    model_config_from_mapping,
    register_backbone,
    register_model_family,
    registry,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

SEED_SECTION: dict[str, Any] = {
    "name": "gai-yolo12-example",
    "num_classes": 10,
    "input_size": [320, 320],
    "backbone": "tiny_csp",
    "backbone_params": {"base_channels": 32, "depth": 2},
    "head": {"hidden_channels": 128},
    "anchors": [[[10, 13], [16, 30]], [[30, 61], [62, 45]]],
    "strides": [8, 16],
}


def _seed_cfg() -> GaiYoloConfig:
    return model_config_from_mapping(SEED_SECTION)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- parameter counts


def test_seed_example_parameter_breakdown() -> None:
    model = build_model(_seed_cfg())
    assert isinstance(model, GAIYoloV12)
    # backbone, base 32, depth 2, input 3:
    #   stage 0: ConvBlock(3,32,3) 3*32*9+64 = 928; Res(32): 32*32+64 = 1088, 32*32*9+64 = 9280
    #            -> 11,296
    #   stage 1: ConvBlock(32,64,3) 32*64*9+128 = 18,560; Res(64): 64*64+128 = 4,224,
    #            64*64*9+128 = 36,992 -> 59,776
    #   total 11,296 + 59,776 = 71,072
    assert _count(model.backbone) == 71_072
    # heads (h=128, A=2, nc=10 -> 2*15 = 30 outputs) are fed from both stages (32 and 64 ch):
    #   head 0: 32*128*9 = 36,864 + 256 + 128*128*9 = 147,456 + 256 + 128*30 = 3,840 + 30
    #           = 188,702
    #   head 1: 64*128*9 = 73,728 + 256 + 147,456 + 256 + 3,840 + 30 = 225,566
    assert [_count(h) for h in model.heads] == [188_702, 225_566]
    # 71,072 + 188,702 + 225,566 = 485,340; all trainable; 485,340 * 4 B / 2^20 = 1.851 MB
    assert _count(model) == 485_340
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())
    assert round(_count(model) * 4 / 2**20, 2) == 1.85


_UNEVEN = GaiYoloConfig(
    num_classes=2,
    input_channels=3,
    base_channels=4,
    depth=4,
    hidden_channels=8,
    anchors=(((5.0, 5.0),), ((1.0, 2.0), (3.0, 4.0), (5.0, 6.0), (7.0, 8.0))),
    strides=(16, 32),
)


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        # the reference defaults: base 64, depth 3, hidden 128, nc 10, three groups of three.
        # backbone: stage0 3*64*9+128 = 1,856 + (64*64+128 = 4,224) + (64*64*9+128 = 36,992)
        #             = 43,072
        #           stage1 64*128*9+256 = 73,984 + (128*128+256 = 16,640)
        #             + (128*128*9+256 = 147,712) = 238,336
        #           stage2 128*256*9+512 = 295,424 + (256*256+512 = 66,048)
        #             + (256*256*9+512 = 590,336) = 951,808
        #           -> 1,233,216
        # heads (A=3 -> 45 outputs), shared part 256 + 147,456 + 256 + 128*45 + 45 = 153,773:
        #           cin 64: 73,728 + 153,773 = 227,501; cin 128: 147,456 + 153,773 = 301,229;
        #           cin 256: 294,912 + 153,773 = 448,685 -> 977,415
        # total 1,233,216 + 977,415 = 2,210,631
        (GaiYoloConfig(num_classes=10), 2_210_631),
        # tiny fixture: base 8, depth 2, hidden 16, nc 3, two groups of three (24 outputs)
        # backbone: stage0 3*8*9+16 = 232 + (64+16 = 80) + (576+16 = 592) = 904
        #           stage1 8*16*9+32 = 1,184 + (256+32 = 288) + (2,304+32 = 2,336) = 3,808
        #           -> 4,712
        # heads: cin 8: 1,152+32 + 2,304+32 + 16*24+24 = 3,928; cin 16: 2,304+32+2,304+32+408
        #           = 5,080
        # total 4,712 + 3,928 + 5,080 = 13,720
        (
            GaiYoloConfig(
                num_classes=3,
                base_channels=8,
                depth=2,
                hidden_channels=16,
                anchors=DEFAULT_ANCHORS[:2],
                strides=(8, 16),
            ),
            13_720,
        ),
        # one stage, one anchor, grey input: base 4, hidden 4, nc 1 (6 outputs)
        # stage0 1*4*9+8 = 44 + (16+8 = 24) + (144+8 = 152) = 220
        # head cin 4: 144+8 + 144+8 + 4*6+6 = 334  -> 554
        (
            GaiYoloConfig(
                num_classes=1,
                input_channels=1,
                base_channels=4,
                depth=1,
                hidden_channels=4,
                anchors=(((10.0, 13.0),),),
                strides=(8,),
            ),
            554,
        ),
        # depth 4, two uneven groups (1 and 4 anchors) on the last two stages, base 4, hidden 8,
        # nc 2 (7 outputs per anchor)
        # stage0 3*4*9+8 = 116 + 24 + 152 = 292; stage1 4*8*9+16 = 304 + 80 + 592 = 976
        # stage2 8*16*9+32 = 1,184 + 288 + 2,336 = 3,808
        # stage3 16*32*9+64 = 4,672 + (1,024+64 = 1,088) + (9,216+64 = 9,280) = 15,040
        # backbone 292 + 976 + 3,808 + 15,040 = 20,116
        # head0 cin 16, A=1: 1,152+16 + 576+16 + 8*7+7 = 1,823
        # head1 cin 32, A=4: 2,304+16 + 576+16 + 8*28+28 = 3,164
        # total 20,116 + 1,823 + 3,164 = 25,103
        (_UNEVEN, 25_103),
    ],
    ids=["defaults", "tiny", "one-stage", "uneven-groups"],
)
def test_parameter_counts(cfg: GaiYoloConfig, expected: int) -> None:
    assert _count(build_model(cfg)) == expected
    assert _count(build_model(cfg, device="meta")) == expected


def test_buffers_of_seed_example() -> None:
    buffers = dict(build_model(_seed_cfg()).named_buffers())
    # BatchNorms: backbone 3 per stage x 2 stages (32,32,32 and 64,64,64 channels), heads 2
    # each (128,128). running_mean + running_var = 2*C values each, plus one
    # num_batches_tracked scalar per BN: 2*(3*32 + 3*64 + 4*128) + 10 = 2*800 + 10 = 1,610
    # anchors: two (2, 2) buffers = 8 values. Total 1,618.
    assert sum(b.numel() for b in buffers.values()) == 1_618
    assert buffers["_anchors_0"].tolist() == [[10.0, 13.0], [16.0, 30.0]]
    assert buffers["_anchors_1"].tolist() == [[30.0, 61.0], [62.0, 45.0]]


def test_state_dict_key_layout_matches_training_system() -> None:
    keys = set(build_model(_seed_cfg(), device="meta").state_dict())
    for key in (
        "backbone.stages.0.0.block.0.weight",
        "backbone.stages.0.1.conv1.block.1.running_mean",
        "backbone.stages.1.1.conv2.block.1.num_batches_tracked",
        "heads.1.block.6.bias",
        "heads.0.block.4.running_var",
        "_anchors_0",
        "_anchors_1",
    ):
        assert key in keys
    # conv 0 of every ConvBlock has no bias; only the head's last conv has one.
    assert "backbone.stages.0.0.block.0.bias" not in keys
    assert "heads.0.block.0.bias" not in keys


# --------------------------------------------------------------------------- forward


def test_seed_forward_outputs() -> None:
    model = build_model(_seed_cfg()).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 320, 320))
    assert all(isinstance(o, DetectionScaleOutput) for o in outputs)
    # each stage halves: 320 -> 160 -> 80; A=2, nc+5 = 15
    assert [list(o.raw.shape) for o in outputs] == [[1, 2, 160, 160, 15], [1, 2, 80, 80, 15]]
    assert [o.grid_size for o in outputs] == [(160, 160), (80, 80)]
    assert [o.stride for o in outputs] == [8, 16]
    assert outputs[0].anchors is model._anchors_0
    assert outputs[1].anchors is model._anchors_1


def test_forward_uneven_groups_and_odd_input() -> None:
    model = build_model(_UNEVEN).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(2, 3, 33, 48))
    # stride-2 convs with k=3, pad 1 give ceil(n/2): 33x48 -> 17x24 -> 9x12 -> 5x6 -> 3x3;
    # heads on the last two stages: A=1 then A=4, nc+5 = 7
    assert [list(o.raw.shape) for o in outputs] == [[2, 1, 5, 6, 7], [2, 4, 3, 3, 7]]
    assert [o.stride for o in outputs] == [16, 32]


def test_head_reshape_is_anchor_major() -> None:
    # Channel a*(nc+5)+k of the last conv must land at raw[:, a, y, x, k].
    model = build_model(_seed_cfg()).eval()
    head = model.heads[0]
    feat = torch.randn(1, 32, 3, 4)
    with torch.no_grad():
        flat = head.block(feat)
        raw = head(feat)
    assert torch.equal(raw[0, 1, 2, 3, 4], flat[0, 1 * 15 + 4, 2, 3])


def test_backbone_returns_named_stages() -> None:
    backbone = TinyCSPBackbone(in_channels=3, base_channels=4, depth=3)
    feats = backbone(torch.zeros(1, 3, 16, 16))
    assert list(feats) == ["stage_1", "stage_2", "stage_3"]
    assert backbone.feature_channels == [4, 8, 16]
    assert backbone.out_channels == 16


# --------------------------------------------------------------------------- meta device


def test_meta_build_allocates_nothing_and_runs() -> None:
    model = build_model(_seed_cfg(), device="meta")
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors and all(t.is_meta for t in tensors)
    assert _count(model) == 485_340
    outputs = model.eval()(torch.empty(1, 3, 320, 320, device="meta"))
    assert [list(o.raw.shape) for o in outputs] == [[1, 2, 160, 160, 15], [1, 2, 80, 80, 15]]
    assert outputs[0].anchors is model._anchors_0


def test_build_model_bad_device() -> None:
    with pytest.raises(ModelBuildError, match="not a torch device"):
        build_model(_seed_cfg(), device="no-such-device")


def test_build_model_does_not_touch_global_default_device() -> None:
    build_model(_seed_cfg(), device="meta")
    assert torch.empty(1).device.type == "cpu"


# --------------------------------------------------------------------------- state-dict inference


_ROUND_TRIP = [
    _seed_cfg(),
    GaiYoloConfig(num_classes=10),
    _UNEVEN,
    GaiYoloConfig(
        num_classes=1,
        input_channels=1,
        base_channels=4,
        depth=1,
        hidden_channels=4,
        anchors=(((2.5, 7.25),),),
        strides=(8,),
    ),
    # three groups of two on a 4-stage backbone (heads skip stage 0)
    GaiYoloConfig(
        num_classes=7,
        base_channels=4,
        depth=4,
        hidden_channels=12,
        anchors=(((1, 1), (2, 2)), ((3, 3), (4, 4)), ((5, 5), (6, 6))),
        strides=(4, 8, 16),
    ),
]


@pytest.mark.parametrize("cfg", _ROUND_TRIP, ids=["seed", "defaults", "uneven", "tiny1", "skip0"])
def test_state_dict_round_trip(cfg: GaiYoloConfig) -> None:
    torch.manual_seed(0)
    state = build_model(cfg).state_dict()
    inferred = infer_config_from_state_dict(state)
    assert inferred is not None
    for field in (
        "num_classes",
        "input_channels",
        "base_channels",
        "depth",
        "hidden_channels",
        "anchors",
        "backbone",
    ):
        assert getattr(inferred, field) == getattr(cfg, field), field
    # what a state dict cannot tell gets the reference defaults
    assert inferred.input_size == (640, 640)
    assert inferred.strides == default_strides(len(cfg.anchors))
    rebuilt = build_model(inferred)
    rebuilt.load_state_dict(state, strict=True)
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in state.items())


def test_infer_accepts_data_parallel_prefix() -> None:
    state = {f"module.{k}": v for k, v in build_model(_seed_cfg()).state_dict().items()}
    inferred = infer_config_from_state_dict(state)
    assert inferred is not None and inferred.base_channels == 32


def test_infer_reads_the_fixture_checkpoint() -> None:
    ckpt = torch.load(
        FIXTURES / "tiny-experiment/checkpoints/epoch_001.pt",
        weights_only=True,
        map_location="cpu",
        mmap=True,
    )
    inferred = infer_config_from_state_dict(ckpt["model_state_dict"])
    assert inferred is not None
    assert (inferred.num_classes, inferred.base_channels, inferred.depth) == (3, 8, 2)
    assert inferred.hidden_channels == 16
    assert inferred.anchors == DEFAULT_ANCHORS[:2]


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)},
        {"conv1.weight": torch.zeros(4, 3, 7, 7), "fc.weight": torch.zeros(10, 4)},
        # a backbone alone (no heads, no anchors) is some other model
        {"backbone.stages.0.0.block.0.weight": torch.zeros(4, 3, 3, 3)},
    ],
    ids=["empty", "linear", "resnet-like", "backbone-only"],
)
def test_infer_returns_none_for_other_models(state: dict[str, Any]) -> None:
    assert infer_config_from_state_dict(state) is None


def _drop_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


def _broken_states() -> list[tuple[str, dict[str, Any], str]]:
    real = dict(build_model(_seed_cfg()).state_dict())
    cases: list[tuple[str, dict[str, Any], str]] = []
    s = _drop_prefix(real, "backbone.stages.1.0.")
    cases.append(("missing-stage-conv", s, "backbone.stages.1.0.block.0.weight is missing"))
    s = _drop_prefix(real, "backbone.stages.1.")
    cases.append(("missing-stage", s, "2 anchor groups but the backbone has only 1 stages"))
    s = {**real}
    del s["_anchors_1"]
    cases.append(("anchor-missing", s, "2 heads but 1 _anchors_i"))
    s = {**real, "_anchors_0": torch.zeros(2, 3)}
    cases.append(("anchor-shape", s, r"_anchors_0 has shape \[2, 3\]"))
    s = {**real, "heads.1.block.6.weight": torch.zeros(31, 128, 1, 1)}
    cases.append(("head-out-not-divisible", s, "31 output channels"))
    s = {**real, "heads.1.block.6.weight": torch.zeros(32, 128, 1, 1)}
    cases.append(("heads-disagree", s, "head 1 predicts 11 classes but head 0 predicts 10"))
    s = {**real, "heads.0.block.1.weight": torch.zeros(64)}
    cases.append(("wrong-bn-shape", s, r"heads.0.block.1.weight has \[64\], expected \[128\]"))
    s = {**real, "extra.weight": torch.zeros(1)}
    cases.append(("unexpected-key", s, "unexpected extra.weight"))
    s = {**real}
    del s["backbone.stages.1.1.conv1.block.1.running_var"]
    cases.append(("missing-buffer", s, "missing backbone.stages.1.1.conv1.block.1.running_var"))
    s = {**real, "heads.1.block.6.weight": 3}
    cases.append(("non-tensor", s, "is int, expected a tensor"))
    s = {**real, "backbone.stages.0.0.block.0.weight": torch.zeros(32, 3)}
    cases.append(("stem-not-4d", s, "expected a 4-d conv weight"))
    s = {**real, "_anchors_0": torch.zeros(2, 2, device="meta")}
    cases.append(("meta-anchors", s, "meta tensor without values"))
    s = {**real, "_anchors_0": torch.tensor([[10.0, 13.0], [-1.0, 30.0]])}
    cases.append(("negative-anchor", s, "inconsistent architecture"))
    s = {k.replace("heads.1.", "heads.2."): v for k, v in real.items()}
    cases.append(("head-gap", s, r"head indices \[0, 2\]"))
    return cases


_BROKEN = _broken_states()


@pytest.mark.parametrize(("state", "match"), [c[1:] for c in _BROKEN], ids=[c[0] for c in _BROKEN])
def test_infer_rejects_inconsistent_gai_state_dicts(state: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelBuildError, match=match) as info:
        infer_config_from_state_dict(state)
    assert "\n" not in str(info.value)


def test_infer_ignores_missing_num_batches_tracked() -> None:
    # BatchNorm fills a missing num_batches_tracked itself when a plain dict is loaded.
    state = {
        k: v
        for k, v in build_model(_seed_cfg()).state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    inferred = infer_config_from_state_dict(state)
    assert inferred is not None
    build_model(inferred).load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- config parsing


def test_defaults_applied() -> None:
    cfg = model_config_from_mapping({"num_classes": 4})
    assert cfg == GaiYoloConfig(num_classes=4)
    assert cfg.input_size == (640, 640)
    assert (cfg.input_channels, cfg.backbone, cfg.base_channels, cfg.depth) == (
        3,
        "tiny_csp",
        64,
        3,
    )
    assert cfg.hidden_channels == 128
    assert cfg.anchors == DEFAULT_ANCHORS
    assert cfg.strides == (8, 16, 32)
    assert (cfg.freeze_backbone, cfg.freeze_neck, cfg.pretrained) == (False, False, None)


def test_seed_section_parsed() -> None:
    cfg = _seed_cfg()
    assert cfg.anchors == (((10.0, 13.0), (16.0, 30.0)), ((30.0, 61.0), (62.0, 45.0)))
    assert cfg.anchors_per_group == (2, 2)
    assert cfg.feature_channels == (32, 64)
    assert cfg.to_dict()["anchors"] == [[[10.0, 13.0], [16.0, 30.0]], [[30.0, 61.0], [62.0, 45.0]]]
    json.dumps(cfg.to_dict())  # JSON-ready


def test_direct_construction_normalises_sequences() -> None:
    cfg = GaiYoloConfig(
        num_classes=2,
        depth=1,
        input_size=[64, 32],  # type: ignore[arg-type]
        anchors=[[[1, 2]]],  # type: ignore[arg-type]
        strides=[8],  # type: ignore[arg-type]
    )
    assert (cfg.input_size, cfg.strides, cfg.anchors) == ((64, 32), (8,), (((1.0, 2.0),),))
    assert isinstance(cfg.anchors[0][0][0], float)
    hash(cfg)


def test_strides_default_cut_to_groups_and_extended_beyond_three() -> None:
    two = model_config_from_mapping({**SEED_SECTION, "strides": None})
    assert two.strides == (8, 16)
    four = model_config_from_mapping(
        {"num_classes": 1, "backbone_params": {"depth": 4}, "anchors": [[[1, 1]]] * 4}
    )
    # 8, 16, 32 from the reference, then doubling: 64
    assert four.strides == (8, 16, 32, 64)


def test_fine_tuning_keys_and_unknown_keys() -> None:
    with (FIXTURES / "example_config.yaml").open() as fh:
        base = yaml.safe_load(fh)["model"]
    cfg = model_config_from_mapping(
        {
            **base,
            "freeze_backbone": True,
            "freeze_neck": False,
            "freeze_until_epoch": 10,
            "backbone_lr_multiplier": 0.1,
            "neck_lr_multiplier": 1,
            "checkpoint_path": "weights/x.pt",
            "future_key": 1,
        }
    )
    assert cfg.freeze_backbone is True and cfg.freeze_until_epoch == 10
    assert (cfg.backbone_lr_multiplier, cfg.neck_lr_multiplier) == (0.1, 1.0)
    assert cfg.checkpoint_path == "weights/x.pt"
    assert cfg.extra_keys == ("future_key",)


def test_reference_configs_parse() -> None:
    ref = Path("/work/shared/reference/configs")
    if not ref.is_dir():
        pytest.skip("reference configs not present")
    large = model_config_from_mapping(
        yaml.safe_load((ref / "config_large_003.yaml").read_text())["model"]
    )
    assert (large.base_channels, large.depth, large.hidden_channels) == (128, 4, 256)
    assert large.freeze_backbone is True and large.anchors == DEFAULT_ANCHORS


_BAD: list[tuple[str, Any, str]] = [
    ("missing-num_classes", {"input_size": [640, 640]}, "model.num_classes is missing"),
    ("null-num_classes", {"num_classes": None}, "model.num_classes is missing"),
    (
        "zero-num_classes",
        {"num_classes": 0},
        "model.num_classes: expected a positive integer, found 0",
    ),
    ("negative-num_classes", {"num_classes": -3}, "model.num_classes: .* found -3"),
    ("bool-num_classes", {"num_classes": True}, "model.num_classes: .* found True"),
    ("float-num_classes", {"num_classes": 2.5}, "model.num_classes: .* found 2.5"),
    ("str-num_classes", {"num_classes": "10"}, "model.num_classes: .* found '10'"),
    (
        "unknown-backbone",
        {"num_classes": 1, "backbone": "resnet50"},
        "unknown backbone 'resnet50'; use one of: .*tiny_csp",
    ),
    ("nonstr-backbone", {"num_classes": 1, "backbone": 5}, "model.backbone: unknown backbone 5"),
    (
        "depth-zero",
        {"num_classes": 1, "backbone_params": {"depth": 0}},
        "model.backbone_params.depth: .* found 0",
    ),
    (
        "depth-bool",
        {"num_classes": 1, "backbone_params": {"depth": True}},
        "model.backbone_params.depth: .* found True",
    ),
    (
        "base-zero",
        {"num_classes": 1, "backbone_params": {"base_channels": 0}},
        "model.backbone_params.base_channels: .* found 0",
    ),
    (
        "base-negative",
        {"num_classes": 1, "backbone_params": {"base_channels": -8}},
        "base_channels: .* found -8",
    ),
    (
        "hidden-zero",
        {"num_classes": 1, "head": {"hidden_channels": 0}},
        "model.head.hidden_channels: .* found 0",
    ),
    (
        "in-channels-zero",
        {"num_classes": 1, "input_channels": 0},
        "model.input_channels: .* found 0",
    ),
    (
        "backbone_params-not-map",
        {"num_classes": 1, "backbone_params": 5},
        "model.backbone_params: expected a mapping",
    ),
    ("head-not-map", {"num_classes": 1, "head": [128]}, "model.head: expected a mapping"),
    (
        "input_size-one",
        {"num_classes": 1, "input_size": [640]},
        r"model.input_size: expected \[H, W\]",
    ),
    ("input_size-zero", {"num_classes": 1, "input_size": [0, 640]}, "model.input_size: .* found"),
    ("input_size-str", {"num_classes": 1, "input_size": "640"}, "model.input_size: .* found '640'"),
    ("input_size-float", {"num_classes": 1, "input_size": [640, 640.0]}, "model.input_size"),
    ("input_size-bool", {"num_classes": 1, "input_size": [True, 2]}, "model.input_size"),
    (
        "anchors-empty",
        {"num_classes": 1, "anchors": []},
        "model.anchors: expected a non-empty list",
    ),
    ("anchors-str", {"num_classes": 1, "anchors": "x"}, "model.anchors: expected a non-empty list"),
    (
        "anchors-empty-group",
        {"num_classes": 1, "anchors": [[]]},
        r"model.anchors\[0\]: expected a non-empty",
    ),
    (
        "anchors-flat",
        {"num_classes": 1, "anchors": [[10, 13], [16, 30]]},
        r"model.anchors\[0\]\[0\]: expected \[w, h\]",
    ),
    ("anchors-short-pair", {"num_classes": 1, "anchors": [[[10]]]}, r"model.anchors\[0\]\[0\]"),
    (
        "anchors-negative",
        {"num_classes": 1, "anchors": [[[10, -1]]]},
        r"anchors\[0\]\[0\]: .* found \[10, -1\]",
    ),
    ("anchors-bool", {"num_classes": 1, "anchors": [[[10, True]]]}, r"anchors\[0\]\[0\]"),
    ("anchors-nan", {"num_classes": 1, "anchors": [[[10, float("nan")]]]}, r"anchors\[0\]\[0\]"),
    (
        "groups-over-stages",
        {"num_classes": 1, "backbone_params": {"depth": 2}},
        "model.anchors: not set, and the 3 default anchor groups need 3 backbone stages",
    ),
    (
        "groups-over-stages-explicit",
        {**SEED_SECTION, "backbone_params": {"depth": 1}},
        "model.anchors: 2 anchor groups but the backbone has only 1 stages",
    ),
    (
        "strides-count",
        {**SEED_SECTION, "strides": [8]},
        r"model.strides: 1 strides \[8\] for 2 anchor groups",
    ),
    (
        "strides-zero",
        {**SEED_SECTION, "strides": [8, 0]},
        "model.strides: expected a list of positive integers",
    ),
    ("strides-str", {**SEED_SECTION, "strides": "8"}, "model.strides: .* found '8'"),
    ("strides-bool", {**SEED_SECTION, "strides": [8, True]}, "model.strides"),
    (
        "freeze-str",
        {"num_classes": 1, "freeze_backbone": "yes"},
        "model.freeze_backbone: expected true or false, found 'yes'",
    ),
    (
        "freeze-int",
        {"num_classes": 1, "freeze_neck": 1},
        "model.freeze_neck: expected true or false, found 1",
    ),
    (
        "pretrained-str",
        {"num_classes": 1, "pretrained": "no"},
        "model.pretrained: expected true or false",
    ),
    ("name-int", {"num_classes": 1, "name": 5}, "model.name: expected a non-empty string, found 5"),
    (
        "freeze_until-negative",
        {"num_classes": 1, "freeze_until_epoch": -1},
        "model.freeze_until_epoch: .* found -1",
    ),
    (
        "lr-mult-str",
        {"num_classes": 1, "backbone_lr_multiplier": "x"},
        "model.backbone_lr_multiplier: expected a number",
    ),
    (
        "ckpt-path-int",
        {"num_classes": 1, "checkpoint_path": 5},
        "model.checkpoint_path: expected a string",
    ),
    ("section-list", [1, 2], "model: expected a mapping"),
]


@pytest.mark.parametrize(("section", "match"), [c[1:] for c in _BAD], ids=[c[0] for c in _BAD])
def test_config_errors(section: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        model_config_from_mapping(section)
    msg = str(info.value)
    assert "\n" not in msg
    assert info.value.exit_code == 2


def test_config_error_names_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        model_config_from_mapping({"num_classes": 0}, path="exp/config.yaml")
    assert str(info.value).startswith("exp/config.yaml: model.num_classes")
    assert info.value.path == "exp/config.yaml"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "model.num_classes"),
        ({"num_classes": 1, "depth": 0}, "model.backbone_params.depth"),
        ({"num_classes": 1, "input_size": (64,)}, "model.input_size"),
        ({"num_classes": 1, "anchors": ()}, "model.anchors"),
        ({"num_classes": 1, "anchors": (((1.0, 2.0, 3.0),),), "strides": (8,)}, "model.anchors"),
        ({"num_classes": 1, "strides": (8, 16)}, "model.strides: 2 strides"),
        ({"num_classes": 1, "strides": (8, 16, -1)}, "model.strides: expected positive"),
        ({"num_classes": 1, "backbone": "nope"}, "model.backbone: unknown backbone 'nope'"),
        ({"num_classes": 1, "family": "nope"}, "model family 'nope' is unknown"),
        ({"num_classes": 1, "name": ""}, "model.name"),
    ],
)
def test_direct_construction_validates(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GaiYoloConfig(**kwargs)


# --------------------------------------------------------------------------- freezing


def test_freeze_backbone() -> None:
    model = build_model(_seed_cfg(), device="meta")
    frozen = apply_freezing(model, freeze_backbone=True, freeze_neck=False)
    # backbone: 2 stages x (conv + 2 convs in the residual) = 6 conv weights + 6 BN (w, b)
    # = 6 + 12 = 18 parameter tensors, 71,072 values (see the breakdown test)
    assert len(frozen) == 18
    assert all(name.startswith("backbone.") for name in frozen)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 485_340 - 71_072  # = 414,268, the two heads


def test_freeze_neck_freezes_nothing_in_gai_yolo() -> None:
    model = build_model(_seed_cfg(), device="meta")
    assert apply_freezing(model, freeze_backbone=False, freeze_neck=True) == []
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_neck_and_fpn_by_substring() -> None:
    model = torch.nn.ModuleDict(
        {
            "neck": torch.nn.Linear(2, 2),  # 2*2 + 2 = 6
            "my_fpn_layer": torch.nn.Linear(2, 1),  # 2 + 1 = 3
            "backbone_x": torch.nn.Linear(1, 1),  # 2
            "head": torch.nn.Linear(3, 1),  # 4
        }
    )
    frozen = apply_freezing(model, freeze_backbone=False, freeze_neck=True)
    assert frozen == ["neck.weight", "neck.bias", "my_fpn_layer.weight", "my_fpn_layer.bias"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2 + 4
    both = apply_freezing(model, freeze_backbone=True, freeze_neck=True)
    assert len(both) == 6
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4


def test_no_freezing() -> None:
    model = build_model(_seed_cfg(), device="meta")
    assert apply_freezing(model, freeze_backbone=False, freeze_neck=False) == []


# --------------------------------------------------------------------------- registries


def test_builtin_registries() -> None:
    assert "tiny_csp" in known_backbones()
    assert "gai_yolov12" in known_model_families()
    assert get_backbone("tiny_csp") is TinyCSPBackbone
    with pytest.raises(ModelBuildError, match=r"unknown backbone 'nope'; known: .*tiny_csp"):
        get_backbone("nope")
    with pytest.raises(ModelBuildError, match="unknown model family 'nope'"):
        get_model_family("nope")


def test_register_custom_backbone_and_family(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_backbones", dict(registry._backbones))
    monkeypatch.setattr(registry, "_families", dict(registry._families))

    @register_backbone("wide_csp")
    class WideCSP(TinyCSPBackbone):
        def __init__(self, in_channels: int, base_channels: int, depth: int) -> None:
            super().__init__(in_channels, base_channels * 2, depth)

    cfg = model_config_from_mapping({**SEED_SECTION, "backbone": "wide_csp"})
    # wide backbone has 64/128 channels: still built by the default family
    assert build_model(cfg, device="meta").backbone.feature_channels == [64, 128]

    @register_model_family("constant")
    def build_constant(cfg: GaiYoloConfig) -> torch.nn.Module:
        return torch.nn.Linear(cfg.num_classes, 1)

    model = build_model(GaiYoloConfig(num_classes=3, family="constant"), device="meta")
    assert _count(model) == 3 + 1  # 3 weights + 1 bias
    with pytest.raises(ValueError, match="non-empty string"):
        register_backbone("")


def test_registry_name_errors_are_listed_in_config_error() -> None:
    with pytest.raises(ConfigError, match="use one of: tiny_csp"):
        model_config_from_mapping({"num_classes": 1, "backbone": "darknet"})


def test_config_import_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from gai_meta.models import model_config_from_mapping, GaiYoloConfig, known_backbones\n"
        "model_config_from_mapping({'num_classes': 3})\n"
        "assert known_backbones() == ('tiny_csp',)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --------------------------------------------------------------------------- fixtures


def test_example_config_fixture_is_the_seed_example() -> None:
    doc = yaml.safe_load((FIXTURES / "example_config.yaml").read_text())
    assert set(doc) == {"dataset", "model", "dataloader", "experiment"}
    cfg = model_config_from_mapping(doc["model"])
    assert cfg.input_size == (320, 320)
    assert _count(build_model(cfg, device="meta")) == 485_340  # see the breakdown test


def test_tiny_experiment_fixture_layout() -> None:
    exp = FIXTURES / "tiny-experiment"
    doc = yaml.safe_load((exp / "config.yaml").read_text())
    cfg = model_config_from_mapping(doc["model"])
    for epoch in (1, 2):
        path = exp / "checkpoints" / f"epoch_{epoch:03d}.pt"
        assert path.stat().st_size < 1_000_000
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
        assert set(ckpt) == {
            "model_state_dict",
            "optimizer_state_dict",
            "epoch",
            "train_loss",
            "val_loss",
            "scheduler_state_dict",
        }
        assert ckpt["epoch"] == epoch
        build_model(cfg).load_state_dict(ckpt["model_state_dict"], strict=True)
        opt = ckpt["optimizer_state_dict"]
        # AdamW keeps step, exp_avg, exp_avg_sq for each of the model's parameter tensors
        assert len(opt["state"]) == len(list(build_model(cfg, device="meta").parameters()))
        assert float(opt["state"][0]["step"]) == epoch  # one optimizer step per epoch
    metrics = json.loads((exp / "checkpoints" / "training_metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert metrics[0]["coco_metrics"] == {} and metrics[1]["coco_metrics"]
    assert {"train_loss", "val_loss"} <= set(metrics[0])


def test_fixture_script_regenerates_committed_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(FIXTURES / "make_fixtures.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for rel in (
        "example_config.yaml",
        "tiny-experiment/config.yaml",
        "tiny-experiment/checkpoints/training_metrics.json",
    ):
        assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes(), rel
    for name in ("epoch_001.pt", "epoch_002.pt"):
        new = torch.load(tmp_path / "tiny-experiment/checkpoints" / name, weights_only=True)
        old = torch.load(FIXTURES / "tiny-experiment/checkpoints" / name, weights_only=True)
        for key, value in old["model_state_dict"].items():
            assert torch.equal(new["model_state_dict"][key], value), key
