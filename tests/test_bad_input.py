"""Every bad input: exit 2, one line on stderr naming the file, nothing written."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.helpers import run

SENTINEL = b'{"earlier": true}\n'


class Evil:
    """Unpickling this would create a file; the safe loader must never do it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, ...]]:
        return (os.system, (f"touch {self.marker}",))


def _missing(tmp: Path) -> Path:
    return tmp / "nope.pt"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.pt").write_bytes(b"")
    return tmp / "empty.pt"


def _random(tmp: Path) -> Path:
    import random

    rng = random.Random(0)
    (tmp / "random.pt").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    return tmp / "random.pt"


def _truncated(tmp: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"model_state_dict": {"w": torch.zeros(1000)}}, buf)
    data = buf.getvalue()
    (tmp / "trunc.pt").write_bytes(data[: len(data) // 2])
    return tmp / "trunc.pt"


def _png(tmp: Path) -> Path:
    (tmp / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    return tmp / "image.pt"


def _text(tmp: Path) -> Path:
    (tmp / "notes.pt").write_text("just some notes, not a model\n")
    return tmp / "notes.pt"


def _zip(tmp: Path) -> Path:
    with zipfile.ZipFile(tmp / "archive.pt", "w") as zf:
        zf.writestr("hello.txt", "hi")
    return tmp / "archive.pt"


def _evil_pickle(tmp: Path) -> Path:
    torch.save(
        {"model_state_dict": {"w": torch.zeros(2)}, "x": Evil(str(tmp / "PWNED"))}, tmp / "evil.pt"
    )
    return tmp / "evil.pt"


def _evil_legacy_pickle(tmp: Path) -> Path:
    (tmp / "legacy.pt").write_bytes(pickle.dumps(Evil(str(tmp / "PWNED")), protocol=2))
    return tmp / "legacy.pt"


def _directory(tmp: Path) -> Path:
    (tmp / "adir").mkdir()
    return tmp / "adir"


def _no_weights(tmp: Path) -> Path:
    torch.save({"epoch": 1, "train_loss": 0.5}, tmp / "noweights.pt")
    return tmp / "noweights.pt"


def _yaml(text: str, name: str = "bad.yaml") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_text(text)
        return tmp / name

    return make


ALIAS_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    )
    + "model: {num_classes: 1}\n"
)

CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing": (_missing, "no such file"),
    "empty": (_empty, "empty"),
    "random bytes": (_random, "not a model source"),
    "truncated": (_truncated, "truncated or corrupt"),
    "png renamed .pt": (_png, "PNG"),
    "text renamed .pt": (_text, "not a model source"),
    "zip without checkpoint": (_zip, "not a readable PyTorch checkpoint"),
    "weights_only refusal": (_evil_pickle, "--trust-checkpoint"),
    "legacy pickle refusal": (_evil_legacy_pickle, "--trust-checkpoint"),
    "directory": (_directory, "directory"),
    "no weights": (_no_weights, "no model weights"),
    "invalid yaml": (_yaml("model: [unclosed\n"), "YAML"),
    "alias bomb": (_yaml(ALIAS_BOMB), "alias"),
    "no model section": (_yaml("experiment: {name: x}\n"), "model"),
    "num_classes zero": (_yaml("model: {num_classes: 0}\n"), "num_classes"),
    "num_classes negative": (_yaml("model: {num_classes: -3}\n"), "num_classes"),
    "unknown backbone": (_yaml("model: {num_classes: 2, backbone: resnet9000}\n"), "backbone"),
    "depth zero": (_yaml("model: {num_classes: 2, backbone_params: {depth: 0}}\n"), "depth"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exit_2_one_line_nothing_written(case: str, tmp_path: Path) -> None:
    make, expected = CASES[case]
    source = make(tmp_path)
    out = tmp_path / "out"
    (out / "metadata").mkdir(parents=True)
    earlier = out / "metadata" / "model_summary.json"
    earlier.write_bytes(SENTINEL)
    for command in ("summarize", "params"):
        args = [command, source] + (["--out", out] if command == "summarize" else [])
        result = run(*args)
        assert result.exit_code == 2, (command, result.output)
        err = result.stderr.strip()
        assert "\n" not in err, err
        assert err.startswith("gai-meta: error: ")
        assert expected.lower() in err.lower(), err
        assert source.name in err, err
        assert "Traceback" not in result.output
    assert earlier.read_bytes() == SENTINEL
    assert sorted(p.name for p in (out / "metadata").iterdir()) == ["model_summary.json"]
    assert not (tmp_path / "PWNED").exists()


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run("--debug", "summarize", _empty(tmp_path))
    assert result.exit_code != 0
    assert result.exception is not None


def test_bad_input_shape(seed_config: Path) -> None:
    result = run("summarize", seed_config, "--input-shape", "1,3,abc,4")
    assert result.exit_code == 2
    assert "part 3" in result.stderr and "abc" in result.stderr


def test_forward_failure_names_module(seed_config: Path, tmp_path: Path) -> None:
    result = run("summarize", seed_config, "--input-shape", "1,5,64,64", "--out", tmp_path)
    assert result.exit_code == 2
    assert "backbone.stages.0.0.block.0" in result.stderr and "[[1, 5, 64, 64]]" in result.stderr
    assert not (tmp_path / "metadata").exists()
