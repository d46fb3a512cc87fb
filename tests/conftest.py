from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"

SEED_CONFIG = """\
model:
  name: seed-example
  num_classes: 10
  input_size: [320, 320]
  backbone: tiny_csp
  backbone_params: {base_channels: 32, depth: 2}
  head: {hidden_channels: 128}
  anchors: [[[10, 13], [16, 30]], [[30, 61], [62, 45]]]
  strides: [8, 16]
experiment:
  name: Seed Example
  learning_rate: 0.001
dataloader:
  batch_size: 8
  num_workers: 2
"""

TINY_CONFIG = """\
model:
  name: tiny
  num_classes: 3
  input_size: [64, 64]
  backbone_params: {base_channels: 8, depth: 2}
  head: {hidden_channels: 16}
  anchors: [[[10, 13], [16, 30]], [[30, 61], [62, 45]]]
  strides: [8, 16]
experiment:
  name: tiny
dataloader:
  batch_size: 4
"""


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Commands may write ./experiments/...; keep that inside the test's folder.
    monkeypatch.chdir(tmp_path)
    # Subprocesses (python -m gai_meta, -X importtime) import this checkout's package.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("COLUMNS", "200")
    # Check results are cached per test, never in the user's cache folder.
    monkeypatch.setenv("GAI_META_CACHE_DIR", str(tmp_path / ".gai-meta-cache"))


@pytest.fixture
def seed_config(tmp_path: Path) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED_CONFIG)
    return path


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path
