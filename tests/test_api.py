"""The package-level Python API: lazy exports that never import torch on import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gai_meta

ROOT = Path(__file__).resolve().parents[1]


def test_import_gai_meta_does_not_import_torch() -> None:
    code = (
        "import sys, gai_meta; "
        "assert callable(gai_meta.record_epoch) and callable(gai_meta.load_config); "
        "sys.exit('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_lazy_exports(tmp_path: Path) -> None:
    from gai_meta.history import record_epoch

    assert gai_meta.record_epoch is record_epoch
    assert set(gai_meta.__all__) <= set(dir(gai_meta))
    assert set(gai_meta.__all__) - {"__version__"} == set(gai_meta._LAZY)
    path = gai_meta.record_epoch(tmp_path, epoch=1, train_loss=0.5)
    assert json.loads(path.read_text()) == [{"epoch": 1, "train_loss": 0.5, "val_loss": None}]
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        gai_meta.nope  # noqa: B018
