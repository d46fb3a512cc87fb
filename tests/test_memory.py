"""Checkpoints are accounted for without reading their tensors: RSS grows far less than the file.

Each check runs in a fresh process: the pipeline first runs on a tiny file (so imports and
torch's lazy set-up are paid), then ``ru_maxrss`` is read before and after the big file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import REPO

_SCRIPT = """
import resource, sys
from gai_meta.summary import load_and_introspect, metadata_documents

def account(path):
    intro = load_and_introspect(path, device=sys.argv[3])
    metadata_documents(intro)
    return intro.account.total

account(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
total = account(sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(total, (after - before) * 1024)
"""


def _write(path: Path, rows: int, fmt: str) -> int:
    # 64 tensors of rows x 1024 float32 values
    state = {f"blocks.{i}.proj.weight": torch.ones(rows, 1024) for i in range(64)}
    if fmt == "torch":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    return 64 * rows * 1024


def _growth(tmp_path: Path, rows: int, fmt: str, device: str) -> tuple[int, int, int]:
    small, big = tmp_path / f"small.{fmt}", tmp_path / f"big.{fmt}"
    _write(small, 1, fmt)
    numel = _write(big, rows, fmt)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(small), str(big), device],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=True,
    )
    total, growth = map(int, done.stdout.split())
    assert total == numel
    return numel, growth, big.stat().st_size


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
@pytest.mark.parametrize("device", ["auto", "meta"])
def test_rss_growth_much_smaller_than_file(tmp_path: Path, fmt: str, device: str) -> None:
    numel, growth, size = _growth(tmp_path, 256, fmt, device)  # 64 * 256 * 1024 * 4 B = 64 MiB
    assert size >= numel * 4
    assert growth < size / 4, (growth, size)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_rss_large_state_dict(tmp_path: Path, fmt: str) -> None:
    _, growth, size = _growth(tmp_path, 1536, fmt, "auto")  # 64 * 1536 * 1024 * 4 B = 384 MiB
    assert growth < size / 16, (growth, size)
