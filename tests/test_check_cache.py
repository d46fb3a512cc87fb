"""The cache of passing checks: hits without torch, and never trusting a bad entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gai_meta import __version__, check_cache
from tests.conftest import TINY_CONFIG
from tests.helpers import run


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".gai-meta-cache" / "check").glob("*.json"))


def _checked(tmp_path: Path, tiny_config: Path) -> Path:
    """Lock and check once (a passing check is stored); the one cache entry."""
    assert run("lock", tiny_config).exit_code == 0
    assert run("check", tiny_config).exit_code == 0
    [entry] = _entries(tmp_path)
    return entry


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAI_META_CACHE_DIR", str(tmp_path / "a"))
    assert check_cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("GAI_META_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert check_cache.cache_dir() == tmp_path / "xdg" / "gai-meta"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert check_cache.cache_dir() == tmp_path / "home" / ".cache" / "gai-meta"


def test_entry_records_every_file_the_result_depends_on(tmp_path: Path, tiny_config: Path) -> None:
    entry_path = _checked(tmp_path, tiny_config)
    entry = json.loads(entry_path.read_text())
    assert entry["format"] == check_cache.CACHE_FORMAT and entry["gai_meta"] == __version__
    assert entry["key"] == entry_path.stem
    paths = {Path(f["path"]) for f in entry["files"]}
    assert tiny_config.resolve() in paths
    assert (tmp_path / "architecture.lock.json").resolve() in paths
    import torch.nn.modules.conv as conv

    import gai_meta.models.gai_yolov12 as arch

    # the classes of the model and their bases, wherever they live
    assert Path(arch.__file__).resolve() in paths
    assert Path(conv.__file__).resolve() in paths
    assert Path(check_cache.__file__).resolve() in paths  # gai-meta's own code
    assert entry["result"] == {"parameters": 13_448}


def test_hit_needs_unchanged_files(tmp_path: Path, tiny_config: Path) -> None:
    _checked(tmp_path, tiny_config)
    assert "cached" in run("check", tiny_config).stdout
    # the same content rewritten (a new mtime) is still a hit: contents are compared
    tiny_config.write_text(TINY_CONFIG)
    assert "cached" in run("check", tiny_config).stdout
    # a change that keeps the architecture: a miss, then a pass that is stored again
    tiny_config.write_text(TINY_CONFIG.replace("name: tiny\n", "name: tiny2\n"))
    assert "cached" not in run("check", tiny_config).stdout
    assert "cached" in run("check", tiny_config).stdout
    # the baseline edited by hand: a miss
    baseline = tmp_path / "architecture.lock.json"
    baseline.write_text(baseline.read_text() + "\n")
    assert "cached" not in run("check", tiny_config).stdout


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda e: b"{ not json",
        lambda e: b"[]",
        lambda e: json.dumps({**e, "format": 999}).encode(),
        lambda e: json.dumps({**e, "gai_meta": "0.0.0-other"}).encode(),
        lambda e: json.dumps({**e, "key": "0" * 64}).encode(),
        lambda e: json.dumps({**e, "files": []}).encode(),
        lambda e: json.dumps({**e, "files": [{"path": 3}]}).encode(),
        lambda e: json.dumps({**e, "result": {"parameters": "many"}}).encode(),
        lambda e: json.dumps(
            {**e, "files": [{**f, "sha256": "0" * 64} for f in e["files"]]}
        ).encode(),
    ],
    ids=[
        "bad-json",
        "not-object",
        "format",
        "version",
        "key",
        "no-files",
        "bad-file",
        "bad-result",
        "hashes",
    ],
)
def test_corrupt_or_foreign_entries_are_ignored(
    tmp_path: Path, tiny_config: Path, corrupt: object
) -> None:
    entry_path = _checked(tmp_path, tiny_config)
    entry = json.loads(entry_path.read_text())
    entry_path.write_bytes(corrupt(entry))  # type: ignore[operator]
    result = run("check", tiny_config)
    assert result.exit_code == 0, result.output
    assert "cached" not in result.stdout
    # the full check replaced the bad entry with a good one
    assert "cached" in run("check", tiny_config).stdout


def test_foreign_entry_under_another_key_is_not_trusted(tmp_path: Path, tiny_config: Path) -> None:
    entry_path = _checked(tmp_path, tiny_config)
    # an entry stored for another request (another budget) is renamed to this request's key
    assert run("check", tiny_config, "--max-parameters", "99999").exit_code == 0
    [other] = [p for p in _entries(tmp_path) if p != entry_path]
    os.replace(other, entry_path)
    assert "cached" not in run("check", tiny_config).stdout


def test_unwritable_cache_never_fails_a_check(
    tmp_path: Path, tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("GAI_META_CACHE_DIR", str(blocker))
    assert run("lock", tiny_config).exit_code == 0
    assert run("check", tiny_config).exit_code == 0
    assert "cached" not in run("check", tiny_config).stdout


def test_large_files_trust_old_stat(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (5 * 2**20))
    old = 1_000_000_000_000_000_000  # 2001: long before the stamp, so the stat can be trusted
    os.utime(big, ns=(old, old))
    stamp = check_cache.stamp(big)
    assert stamp is not None and stamp["trust_stat"] is True
    small = tmp_path / "small.txt"
    small.write_text("x")
    os.utime(small, ns=(old, old))
    assert check_cache.stamp(small)["trust_stat"] is False  # type: ignore[index]
    key = "k" * 64
    assert check_cache.store(key, [stamp, check_cache.stamp(small)], {"parameters": 1})
    assert check_cache.lookup(key) == {"parameters": 1}
    small.write_text("y")  # same size, same mtime restored: the hash tells
    os.utime(small, ns=(old, old))
    assert check_cache.lookup(key) is None
    assert not check_cache.store(key, [check_cache.stamp(tmp_path / "missing")], {})


def test_class_files_follow_the_mro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mymodels.py").write_text(
        "import torch.nn as nn\nclass Base(nn.Module):\n    pass\n"
    )
    (tmp_path / "mynet.py").write_text("from mymodels import Base\nclass Net(Base):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import mynet  # type: ignore[import-not-found]
    import torch.nn.modules.module as module

    files = check_cache.class_files([mynet.Net, int])
    assert files == [
        (tmp_path / "mynet.py").resolve(),
        (tmp_path / "mymodels.py").resolve(),
        Path(module.__file__).resolve(),
    ]
    sys.modules.pop("mynet")
    sys.modules.pop("mymodels")


def test_cache_hit_imports_no_torch(tmp_path: Path, tiny_config: Path) -> None:
    _checked(tmp_path, tiny_config)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gai_meta", "check", str(tiny_config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "tiny: ok, matches architecture.lock.json (13,448 parameters; cached)\n"
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "gai_meta.check_cache" in modules
    heavy = {m for m in modules if m.split(".")[0] in {"torch", "numpy", "yaml", "torchinfo"}}
    assert not heavy, sorted(heavy)[:5]
    # answered before Typer parses: its pydantic-based option coercion is never loaded
    assert "pydantic" not in modules and "typer._adapters" not in modules


# -- the instant path before Typer ------------------------------------------------------------


def _fast(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str]:
    from gai_meta.cli._fastcheck import answer

    capsys.readouterr()
    code = answer(argv)
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--max-parameters", "99999"],
        ["--max-parameters=99999", "--max-size-mb", "1"],
        ["--input-shape=1,3,64,64", "--device", "cpu"],
        ["-b", "architecture.lock.json"],
        ["--max-flops", "1e12", "--trust-checkpoint"],
    ],
)
def test_fast_path_prints_what_the_command_prints(
    tmp_path: Path,
    tiny_config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
) -> None:
    import types

    # max_flops is counted through gai_meta.estimates; a stand-in keeps this test about caching
    monkeypatch.setitem(
        sys.modules,
        "gai_meta.estimates",
        types.SimpleNamespace(count_compute=lambda m, a: types.SimpleNamespace(flops=1)),
    )
    assert run("lock", tiny_config).exit_code == 0
    argv = ["check", str(tiny_config), *extra]
    assert _fast(argv, capsys) == (None, "")  # nothing cached yet: Typer runs
    full = run(*argv)
    assert full.exit_code == 0, full.output
    cached = run(*argv)
    assert "; cached" in cached.stdout
    assert _fast(argv, capsys) == (0, cached.stdout)


def test_fast_path_with_several_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(TINY_CONFIG)
    (tmp_path / "b.yaml").write_text(TINY_CONFIG.replace("depth: 2", "depth: 3"))
    (tmp_path / "pyproject.toml").write_text(
        '[[tool.gai-meta.models]]\nname = "a"\nsource = "a.yaml"\n'
        '[[tool.gai-meta.models]]\nname = "b"\nsource = "b.yaml"\n'
    )
    assert run("lock").exit_code == 0
    assert run("check", "--model", "a").exit_code == 0
    assert _fast(["check"], capsys) == (None, "")  # b is not cached yet
    assert _fast(["check", "-m", "a"], capsys)[0] == 0
    assert run("check").exit_code == 0
    code, out = _fast(["check"], capsys)
    assert code == 0 and out == run("check").stdout and out.count("; cached") == 2


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["summarize", "x.yaml"],
        ["check", "--update"],
        ["check", "--no-cache"],
        ["check", "--help"],
        ["check", "--colour", "x"],
        ["check", "--max-parameters", "many"],
        ["check", "--max-parameters", "0"],
        ["check", "--max-size-mb", "-1"],
        ["check", "--input-shape", "1,x"],
        ["check", "--config"],
        ["check", "a.yaml", "b.yaml"],
        ["check", "--device", "cpu", "--device", "meta"],
        ["check"],  # no source configured: the command reports it
    ],
)
def test_fast_path_leaves_everything_else_to_typer(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fast(argv, capsys) == (None, "")


def test_fast_path_leaves_config_errors_to_typer(
    tmp_path: Path, tiny_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _checked(tmp_path, tiny_config)
    (tmp_path / "pyproject.toml").write_text("[tool.gai-meta]\nmax_parameters = 0\n")
    assert _fast(["check", str(tiny_config)], capsys) == (None, "")


@pytest.mark.parametrize("command", ["check", "lock"])
def test_help_of_the_commands_imports_no_torch(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gai_meta", command, "--help"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "--baseline" in done.stdout
    modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "gai_meta.cli.check" in modules
    assert not {m for m in modules if m.split(".")[0] in {"torch", "numpy", "torchinfo"}}
