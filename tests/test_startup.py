"""`gai-meta --help` and `import gai_meta` stay free of torch (python -X importtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def _imported(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}


@pytest.mark.parametrize(
    "args",
    [
        ("-m", "gai_meta", "--help"),
        ("-m", "gai_meta", "summarize", "--help"),
        ("-c", "import gai_meta"),
    ],
)
def test_no_torch_at_startup(args: tuple[str, ...]) -> None:
    modules = _imported(*args)
    assert "gai_meta" in modules
    heavy = {
        m for m in modules if m.split(".")[0] in {"torch", "torchinfo", "numpy", "transformers"}
    }
    assert not heavy, sorted(heavy)[:5]
