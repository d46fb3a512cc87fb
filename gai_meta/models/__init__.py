"""Built-in architectures (GAI-YOLOv12), their registries, config parsing and state-dict inference.

The config and registry names are torch-free; the torch-backed names (``build_model``,
``GAIYoloV12``, ``infer_config_from_state_dict``, ...) are imported on first access, so
``from gai_meta.models import model_config_from_mapping`` never imports torch.

Typical use::

    cfg = model_config_from_mapping(yaml_doc["model"], path="config.yaml")
    model = build_model(cfg, device="meta")
    frozen = apply_freezing(model, freeze_backbone=cfg.freeze_backbone,
                            freeze_neck=cfg.freeze_neck)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gai_meta.models.config import (
    DEFAULT_ANCHORS,
    DEFAULT_MODEL_NAME,
    DEFAULT_STRIDES,
    GaiYoloConfig,
    default_strides,
    model_config_from_mapping,
)
from gai_meta.models.registry import (
    get_backbone,
    get_model_family,
    known_backbones,
    known_model_families,
    register_backbone,
    register_model_family,
)

if TYPE_CHECKING:
    from gai_meta.models.build import apply_freezing, build_model
    from gai_meta.models.gai_yolov12 import (
        ConvBlock,
        DetectionHeadBlock,
        DetectionScaleOutput,
        GAIYoloV12,
        ResidualBlock,
        TinyCSPBackbone,
    )
    from gai_meta.models.infer import infer_config_from_state_dict, strip_data_parallel_prefix

__all__ = [
    "DEFAULT_ANCHORS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_STRIDES",
    "ConvBlock",
    "DetectionHeadBlock",
    "DetectionScaleOutput",
    "GAIYoloV12",
    "GaiYoloConfig",
    "ResidualBlock",
    "TinyCSPBackbone",
    "apply_freezing",
    "build_model",
    "default_strides",
    "get_backbone",
    "get_model_family",
    "infer_config_from_state_dict",
    "known_backbones",
    "known_model_families",
    "model_config_from_mapping",
    "register_backbone",
    "register_model_family",
    "strip_data_parallel_prefix",
]

_LAZY = {
    "apply_freezing": "gai_meta.models.build",
    "build_model": "gai_meta.models.build",
    "ConvBlock": "gai_meta.models.gai_yolov12",
    "DetectionHeadBlock": "gai_meta.models.gai_yolov12",
    "DetectionScaleOutput": "gai_meta.models.gai_yolov12",
    "GAIYoloV12": "gai_meta.models.gai_yolov12",
    "ResidualBlock": "gai_meta.models.gai_yolov12",
    "TinyCSPBackbone": "gai_meta.models.gai_yolov12",
    "infer_config_from_state_dict": "gai_meta.models.infer",
    "strip_data_parallel_prefix": "gai_meta.models.infer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
