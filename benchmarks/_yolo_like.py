"""A stand-in for GAI-YOLOv12 (same layer layout) until gai_meta.models lands on main."""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = ConvBlock(c, c, kernel_size=1)
        self.conv2 = ConvBlock(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class YoloLike(nn.Module):
    def __init__(
        self, base_channels: int = 64, depth: int = 3, hidden: int = 128, num_classes: int = 10,
        num_anchors: int = 3, groups: int = 3,
    ) -> None:
        super().__init__()
        stages = []
        prev = 3
        chans = []
        for i in range(depth):
            c = base_channels * 2**i
            stages.append(nn.Sequential(ConvBlock(prev, c, stride=2), ResidualBlock(c)))
            chans.append(c)
            prev = c
        self.stages = nn.ModuleList(stages)
        self.num_anchors = num_anchors
        self.no = num_classes + 5
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(),
                nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(),
                nn.Conv2d(hidden, num_anchors * self.no, 1),
            )
            for c in chans[-groups:]
        )
        for i in range(min(groups, depth)):
            self.register_buffer(f"_anchors_{i}", torch.ones(num_anchors, 2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        outs = []
        for head, f in zip(self.heads, feats[-len(self.heads):]):
            y = head(f)
            b, _, h, w = y.shape
            outs.append(y.view(b, self.num_anchors, self.no, h, w).permute(0, 1, 3, 4, 2))
        return outs
