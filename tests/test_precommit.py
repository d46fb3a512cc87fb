"""The pre-commit hook, driven by the real `pre-commit` in a temporary git repository.

The hook is the documented `repo: local` / `language: system` variant with this interpreter
(`python -m gai_meta check`; conftest puts this checkout on PYTHONPATH), so no network is used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_CONFIG
from tests.helpers import run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

HOOK = """\
repos:
  - repo: local
    hooks:
      - id: gai-meta-check
        name: gai-meta architecture check
        entry: {python} -m gai_meta check
        language: system
        pass_filenames: false
        files: '{files}'
"""


def _manifest_files_pattern() -> str:
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    return re.search(r"^\s*files: (.+)$", text, re.M).group(1)  # type: ignore[union-attr]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with a GAI-YOLOv12 config, [tool.gai-meta] and a locked baseline."""
    root = tmp_path / "repo"
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "tiny.yaml").write_text(TINY_CONFIG)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.gai-meta]\nsource = "configs/tiny.yaml"\n'
    )
    (root / ".pre-commit-config.yaml").write_text(
        HOOK.format(python=sys.executable, files=_manifest_files_pattern())
    )
    _git(root, "init", "-q")
    monkeypatch.chdir(root)
    assert run("lock").exit_code == 0
    _git(root, "add", "-A")
    monkeypatch.setenv("PRE_COMMIT_HOME", str(tmp_path / "pre-commit-home"))
    return root


def _pre_commit(repo: Path) -> subprocess.CompletedProcess[str]:
    _git(repo, "add", "-A")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", "--verbose", "--color", "never"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )


def _passed(done: subprocess.CompletedProcess[str]) -> bool:
    return (
        done.returncode == 0
        and re.search(r"gai-meta architecture check\.+Passed", done.stdout) is not None
    )


def test_hook_passes_and_then_answers_from_the_cache(repo: Path) -> None:
    first = _pre_commit(repo)
    assert _passed(first), first.stdout + first.stderr
    assert "tiny: ok, matches architecture.lock.json (13,448 parameters)" in first.stdout
    second = _pre_commit(repo)
    assert _passed(second), second.stdout + second.stderr
    assert "tiny: ok, matches architecture.lock.json (13,448 parameters; cached)" in second.stdout


def test_hook_fails_on_drift_then_passes_after_update(repo: Path) -> None:
    (repo / "configs" / "tiny.yaml").write_text(
        TINY_CONFIG.replace("hidden_channels: 16", "hidden_channels: 24")
    )
    failed = _pre_commit(repo)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "gai-meta architecture check" in failed.stdout and "Failed" in failed.stdout
    assert "tiny: architecture differs from architecture.lock.json" in failed.stdout
    assert "parameters: 13,448 -> " in failed.stdout
    assert run("check", "--update").exit_code == 0
    fixed = _pre_commit(repo)
    assert _passed(fixed), fixed.stdout + fixed.stderr


def test_hook_fails_on_a_broken_budget(repo: Path) -> None:
    with open(repo / "pyproject.toml", "a") as fh:
        fh.write("max_parameters = 10000\n")
    failed = _pre_commit(repo)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    # tiny: 13,448 parameters (tests/helpers.gai_params(8, 2, 16, 3, [2, 2]))
    assert (
        "tiny: budget max_parameters broken: limit 10,000, value 13,448 (3,448 over)"
        in failed.stdout
    )


def test_manifest_is_valid() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", ".pre-commit-hooks.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "id: gai-meta-check" in text and "entry: gai-meta check" in text
    assert "pass_filenames: false" in text


def test_documented_configs_are_valid(tmp_path: Path) -> None:
    docs = (REPO / "docs" / "check.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if b.startswith("repos:")]
    assert len(blocks) == 2  # the `repo:` reference and the `repo: local` variant
    for i, block in enumerate(blocks):
        path = tmp_path / f"config{i}.yaml"
        path.write_text(block)
        done = subprocess.run(
            [sys.executable, "-m", "pre_commit", "validate-config", str(path)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, block + done.stdout + done.stderr
    assert "language: system" in blocks[1] and "id: gai-meta-check" in blocks[0]
