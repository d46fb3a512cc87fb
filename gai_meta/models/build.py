"""Config -> model, and the training system's layer freezing."""

from __future__ import annotations

import torch
from torch import nn

from gai_meta.errors import ModelBuildError
from gai_meta.models.config import GaiYoloConfig
from gai_meta.models.registry import get_model_family

__all__ = ["apply_freezing", "build_model"]


def build_model(cfg: GaiYoloConfig, *, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model ``cfg`` describes, allocating its tensors on ``device``.

    ``device="meta"`` allocates no storage at all: counts, shapes and a forward pass still work.
    Freezing is *not* applied here; call :func:`apply_freezing` with the config's flags.

    >>> model = build_model(GaiYoloConfig(num_classes=3, depth=1, anchors=(((10, 13),),),
    ...                                   strides=(8,)), device="meta")
    >>> next(model.parameters()).is_meta
    True
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ModelBuildError(
            f"device {device!r} is not a torch device; use e.g. 'cpu', 'cuda:0' or 'meta'"
        ) from err
    builder = get_model_family(cfg.family)
    try:
        with dev:
            model: nn.Module = builder(cfg)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelBuildError(
            f"cannot build {cfg.family} model {cfg.name!r} on {dev}: {first}"
        ) from err
    return model


def apply_freezing(model: nn.Module, *, freeze_backbone: bool, freeze_neck: bool) -> list[str]:
    """Freeze parameters exactly as the training system does; return the frozen names in order.

    ``freeze_backbone`` freezes every parameter whose qualified name contains ``backbone``;
    ``freeze_neck`` every one containing ``neck`` or ``fpn`` (GAI-YOLOv12 has none, so it
    freezes nothing there). Plain substring tests, as in the training system. Parameters that
    are already frozen and match are listed too; nothing is ever unfrozen.
    """
    frozen: list[str] = []
    for name, param in model.named_parameters():
        if (freeze_backbone and "backbone" in name) or (
            freeze_neck and ("neck" in name or "fpn" in name)
        ):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen
