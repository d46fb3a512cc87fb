"""Shared test helpers: run the CLI, hand-computed GAI-YOLOv12 parameter counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from gai_meta.cli import app


def run(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def conv_block(cin: int, cout: int, k: int = 3) -> int:
    """Conv (no bias) + BatchNorm (weight, bias)."""
    return cin * cout * k * k + 2 * cout


def gai_params(
    base: int, depth: int, hidden: int, classes: int, anchors: list[int], cin: int = 3
) -> int:
    """GAI-YOLOv12 parameters from the reference's layer list, written independently of the code."""
    total, prev, chans = 0, cin, []
    for i in range(depth):
        c = base * 2**i
        total += conv_block(prev, c) + conv_block(c, c, 1) + conv_block(c, c)
        chans.append(c)
        prev = c
    feeds = chans[-len(anchors) :]
    for c, a in zip(feeds, anchors, strict=False):
        out = a * (classes + 5)
        total += conv_block(c, hidden) + conv_block(hidden, hidden) + hidden * out + out
    return total
