"""Small models for the estimate-vs-measured tests (importable by the measuring subprocess)."""

from __future__ import annotations

from typing import Any

from torch import nn


def mlp(width: int = 1024, depth: int = 3) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def conv_net(channels: int = 32) -> nn.Module:
    c = channels
    return nn.Sequential(
        nn.Conv2d(3, c, 3, 2, 1, bias=False),
        nn.BatchNorm2d(c),
        nn.SiLU(),
        nn.Conv2d(c, 2 * c, 3, 2, 1, bias=False),
        nn.BatchNorm2d(2 * c),
        nn.SiLU(),
        nn.Conv2d(2 * c, 2 * c, 3, 1, 1, bias=False),
        nn.BatchNorm2d(2 * c),
        nn.SiLU(),
        nn.Conv2d(2 * c, 10, 1),
    )


def gai_yolo(freeze_backbone: bool = False, **model_section: Any) -> nn.Module:
    """GAI-YOLOv12 from a config's ``model`` section (the seed's example by default)."""
    from gai_meta.models import apply_freezing, build_model, model_config_from_mapping

    section = {
        "num_classes": 10,
        "input_size": [320, 320],
        "backbone_params": {"base_channels": 32, "depth": 2},
        "head": {"hidden_channels": 128},
        "anchors": [[[10, 13], [16, 30]], [[30, 61], [62, 45]]],
        **model_section,
    }
    model = build_model(model_config_from_mapping(section), device="cpu")
    if freeze_backbone:
        apply_freezing(model, freeze_backbone=True, freeze_neck=False)
    return model
