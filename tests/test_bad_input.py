"""Every bad input: exit 2, one line on stderr naming the file, nothing written."""

from __future__ import annotations

import io
import os
import pickle
import struct
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


def _directory_named_like_weights(tmp: Path) -> Path:
    (tmp / "w.safetensors").mkdir()
    return tmp / "w.safetensors"


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


def _safetensors(
    header: bytes | None = None, *, length: int | None = None, data: bytes = b""
) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        head = header if header is not None else b"{}"
        n = len(head) if length is None else length
        (tmp / "w.safetensors").write_bytes(struct.pack("<Q", n) + head + data)
        return tmp / "w.safetensors"

    return make


def _st_header(entries: dict[str, object]) -> bytes:
    import json

    return json.dumps(entries).encode()


_F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

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
    "safetensors length beyond file": (
        _safetensors(b'{"a": 1}', length=10_000),
        "header length 10000 goes beyond the file",
    ),
    "safetensors invalid json": (_safetensors(b'{"a": [1, 2'), "not valid JSON"),
    "safetensors without tensors": (_safetensors(b"{}", data=bytes(8)), "holds no tensors"),
    "safetensors overlapping offsets": (
        _safetensors(
            _st_header({"a": _F32x2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}),
            data=bytes(12),
        ),
        "'a' and 'b' overlap",
    ),
    "safetensors offsets outside data": (
        _safetensors(
            _st_header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}), data=bytes(4)
        ),
        "outside the 4 data bytes",
    ),
    "safetensors dtype size": (
        _safetensors(
            _st_header({"a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 8]}}), data=bytes(8)
        ),
        "needs 16",
    ),
    "safetensors unknown dtype": (
        _safetensors(
            _st_header({"a": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}}), data=bytes(8)
        ),
        "unknown dtype 'F7'",
    ),
    "directory named like a checkpoint": (_directory_named_like_weights, "directory"),
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


FACTORY_CASES = {
    "no such module": (
        "no_such_pkg_xyz.models:make",
        "cannot import module 'no_such_pkg_xyz.models'",
    ),
    "no such attribute": ("tests.zoo:missing", "has no attribute 'missing'"),
    "not callable": ("tests.zoo:NOT_CALLABLE", "is an int, not callable"),
    "returns no module": ("tests.zoo:not_a_module", "returned a dict, expected a torch.nn.Module"),
    "raises": ("tests.zoo:raises", "raised ValueError: bad width 0"),
    "import fails": ("broken_mod_xyz:make", "importing 'broken_mod_xyz' raised ZeroDivisionError"),
}


@pytest.mark.parametrize("case", list(FACTORY_CASES))
@pytest.mark.parametrize("where", ["source", "yaml", "config"])
def test_bad_factory_exit_2_one_line(case: str, where: str, tmp_path: Path) -> None:
    (tmp_path / "broken_mod_xyz.py").write_text("x = 1 / 0\n")
    spec, expected = FACTORY_CASES[case]
    if where == "source":
        args = [spec]
    elif where == "yaml":
        (tmp_path / "f.yaml").write_text(f"model: {{_target_: '{spec}'}}\n")
        args = [tmp_path / "f.yaml"]
    else:
        torch.save({"w": torch.zeros(2)}, tmp_path / "sd.pt")
        args = [tmp_path / "sd.pt", "--config", spec]
    for command in ("summarize", "params"):
        extra = ["--out", tmp_path / "out"] if command == "summarize" else []
        result = run(command, *args, *extra)
        assert result.exit_code == 2, (command, result.output)
        err = result.stderr.strip()
        assert "\n" not in err and err.startswith("gai-meta: error: "), err
        assert expected in err and spec in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input", "ids=1,two:int64"], "part 2 ('two')"),
        (["--input", "ids=1,2:int65"], "dtype 'int65'"),
        (["--input", "1,2", "--input-shape", "1,2"], "either --input-shape"),
        (["--input-shape", "1,-3"], "part 2 (-3) must be at least 1"),
    ],
)
def test_bad_input_spec_exit_2(args: list[str], expected: str, tmp_path: Path) -> None:
    result = run("summarize", "tests.zoo:net", *args, "--out", tmp_path)
    assert result.exit_code == 2
    assert expected in result.stderr and "\n" not in result.stderr.strip()
    assert not (tmp_path / "metadata").exists()


def test_unknown_device_and_missing_cuda(tmp_path: Path) -> None:
    result = run("summarize", "tests.zoo:net", "--device", "tpu", "--out", tmp_path)
    assert result.exit_code == 2 and "--device 'tpu'" in result.stderr
    if not torch.cuda.is_available():
        result = run("summarize", "tests.zoo:net", "--device", "cuda", "--out", tmp_path)
        assert result.exit_code == 2 and "CUDA is not available" in result.stderr


def test_factory_with_config_and_bad_target_type(tmp_path: Path) -> None:
    result = run("summarize", "tests.zoo:net", "--config", "tests.zoo:net", "--out", tmp_path)
    assert result.exit_code == 2 and "is a factory; --config is for checkpoints" in result.stderr
    (tmp_path / "t.yaml").write_text("model: {_target_: 12}\n")
    result = run("summarize", tmp_path / "t.yaml", "--out", tmp_path)
    assert result.exit_code == 2
    assert "t.yaml" in result.stderr and "model._target_ is int" in result.stderr
    assert not (tmp_path / "metadata").exists()
