"""gai-meta's own implementation of the GAI-YOLOv12 detector.

The module tree, attribute names, parameter shapes and buffers match the training system
(``shared/reference/gai-yolov12.md``), so its checkpoints load here with ``strict=True``:
``backbone.stages.0.0.block.0.weight``, ``backbone.stages.0.1.conv1.block.1.running_mean``,
``heads.1.block.6.bias``, ``_anchors_0``. Everything is shape-static, so the model also builds
and runs on the ``meta`` device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from gai_meta.models.config import GaiYoloConfig
from gai_meta.models.registry import get_backbone, register_backbone, register_model_family

__all__ = [
    "ConvBlock",
    "DetectionHeadBlock",
    "DetectionScaleOutput",
    "GAIYoloV12",
    "ResidualBlock",
    "TinyCSPBackbone",
    "build_gai_yolov12",
]


@dataclass
class DetectionScaleOutput:
    """One detection scale of the model output.

    ``raw`` is (B, A, H, W, num_classes + 5); ``anchors`` is the model's own ``_anchors_i``
    buffer (the same tensor object, not a copy); ``grid_size`` is (H, W).
    """

    raw: torch.Tensor
    stride: int
    anchors: torch.Tensor
    grid_size: tuple[int, int]


class ConvBlock(nn.Module):
    """Conv2d (no bias, "same" padding) -> BatchNorm2d -> SiLU, held in ``block``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.SiLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x)
        return out


class ResidualBlock(nn.Module):
    """``x + conv2(conv1(x))`` with a 1x1 then a 3x3 ConvBlock."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBlock(channels, channels, kernel_size=1)
        self.conv2 = ConvBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.conv2(self.conv1(x))
        return out


@register_backbone("tiny_csp")
class TinyCSPBackbone(nn.Module):
    """``depth`` stages; stage i halves the resolution and has ``base_channels * 2**i`` channels."""

    def __init__(self, in_channels: int = 3, base_channels: int = 64, depth: int = 3) -> None:
        super().__init__()
        self.feature_channels: list[int] = []
        stages: list[nn.Module] = []
        prev = in_channels
        for i in range(depth):
            out = base_channels * 2**i
            stages.append(nn.Sequential(ConvBlock(prev, out, stride=2), ResidualBlock(out)))
            self.feature_channels.append(out)
            prev = out
        self.stages = nn.ModuleList(stages)
        self.out_channels = prev

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            features[f"stage_{i + 1}"] = x
        return features


class DetectionHeadBlock(nn.Module):
    """Two 3x3 ConvBN-SiLU layers then a 1x1 conv to ``A * (num_classes + 5)`` channels."""

    def __init__(
        self, in_channels: int, num_anchors: int, num_classes: int, hidden_channels: int
    ) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_outputs = num_classes + 5
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_channels),
            nn.SiLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_channels),
            nn.SiLU(),
            nn.Conv2d(hidden_channels, num_anchors * self.num_outputs, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        b, _, h, w = out.shape
        # (B, A*(C+5), H, W) -> (B, A, H, W, C+5): anchor-major channels, predictions last.
        raw: torch.Tensor = out.view(b, self.num_anchors, self.num_outputs, h, w)
        return raw.permute(0, 1, 3, 4, 2)


class GAIYoloV12(nn.Module):
    """Backbone plus one detection head per anchor group, fed from the last backbone stages."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        hidden_channels: int,
        anchors: Sequence[Sequence[Sequence[float]]],
        strides: Sequence[int],
        input_size: Sequence[int],
    ) -> None:
        super().__init__()
        feature_channels: list[int] = [int(c) for c in backbone.feature_channels]  # type: ignore[union-attr]
        if not anchors or len(anchors) > len(feature_channels):
            raise ValueError(
                f"{len(anchors)} anchor groups need between 1 and {len(feature_channels)} "
                "backbone stages"
            )
        if len(strides) != len(anchors):
            raise ValueError(f"{len(strides)} strides for {len(anchors)} anchor groups")
        self.backbone = backbone
        self.num_classes = num_classes
        self.strides = [int(s) for s in strides]
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_anchor_groups = len(anchors)
        head_inputs = feature_channels[-len(anchors) :]
        self.heads = nn.ModuleList(
            DetectionHeadBlock(cin, len(group), num_classes, hidden_channels)
            for cin, group in zip(head_inputs, anchors, strict=True)
        )
        for i, group in enumerate(anchors):
            self.register_buffer(
                f"_anchors_{i}",
                torch.tensor([[float(w), float(h)] for w, h in group], dtype=torch.float32),
                persistent=True,
            )

    def anchor_buffers(self) -> list[torch.Tensor]:
        """The ``_anchors_i`` buffers, one (A, 2) tensor per head."""
        return [getattr(self, f"_anchors_{i}") for i in range(self.num_anchor_groups)]

    def forward(self, x: torch.Tensor) -> list[DetectionScaleOutput]:
        features = list(self.backbone(x).values())[-self.num_anchor_groups :]
        outputs: list[DetectionScaleOutput] = []
        for head, feat, stride, anchors in zip(
            self.heads, features, self.strides, self.anchor_buffers(), strict=True
        ):
            raw = head(feat)
            outputs.append(
                DetectionScaleOutput(
                    raw=raw,
                    stride=stride,
                    anchors=anchors,
                    grid_size=(int(raw.shape[2]), int(raw.shape[3])),
                )
            )
        return outputs


@register_model_family("gai_yolov12")
def build_gai_yolov12(cfg: GaiYoloConfig) -> GAIYoloV12:
    """Build GAIYoloV12 from a config on the current default device (see ``build_model``)."""
    backbone_cls = get_backbone(cfg.backbone)
    backbone = backbone_cls(
        in_channels=cfg.input_channels, base_channels=cfg.base_channels, depth=cfg.depth
    )
    return GAIYoloV12(
        backbone,
        num_classes=cfg.num_classes,
        hidden_channels=cfg.hidden_channels,
        anchors=cfg.anchors,
        strides=cfg.strides,
        input_size=cfg.input_size,
    )
