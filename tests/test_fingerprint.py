"""Fingerprints: content, byte stability, baseline reading, drift reports and budgets."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from gai_meta.budgets import Budgets, BudgetViolation, check_budgets
from gai_meta.errors import BaselineError
from gai_meta.fingerprint import (
    SCHEMA_VERSION,
    diff_fingerprints,
    dumps_fingerprint,
    fingerprint,
    read_baseline,
    render_drift,
    write_baseline,
)
from gai_meta.sources import LoadedModel
from gai_meta.summary import introspect, load_and_introspect
from tests.conftest import REPO
from tests.helpers import gai_params


class TiedNet(nn.Module):
    """a is called twice; b's weight is a's (tied); norm has buffers of two dtypes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight
        self.norm = nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.b(self.a(self.a(x))))


def _fp(model: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
    loaded = LoadedModel(source="test", kind="test", build=lambda device: model.to(device))
    return fingerprint(introspect(loaded, input_shape=shape, device="cpu"))


def test_fingerprint_content_by_hand() -> None:
    fp = _fp(TiedNet(), (2, 4))
    assert list(fp) == [
        "schema_version",
        "model",
        "inputs",
        "totals",
        "output_shapes",
        "layers",
    ]
    assert fp["schema_version"] == SCHEMA_VERSION == 1
    assert fp["model"] == {"class": "TiedNet", "module": __name__}
    assert fp["inputs"] == [{"name": None, "shape": [2, 4], "dtype": "float32"}]
    # parameters: a 4*4 + 4 = 20, b's weight is a's (counted once), norm 4 + 4 -> 28
    # buffers: running_mean 4 + running_var 4 + num_batches_tracked 1 = 9 values;
    # bytes: 28 * 4 = 112 for parameters, 4*4 + 4*4 + 8 (int64) = 40 for buffers
    assert fp["totals"] == {
        "parameters": 28,
        "trainable": 28,
        "buffers": 9,
        "parameter_bytes": 112,
        "buffer_bytes": 40,
        "bytes": 152,
    }
    assert fp["output_shapes"] == [[2, 4]]
    layers = {layer["name"]: layer for layer in fp["layers"]}
    assert list(layers) == ["", "a", "b", "norm"]
    assert layers["a"]["parameters"] == {
        "weight": {"shape": [4, 4], "dtype": "float32", "trainable": True, "tied_to": ["b.weight"]},
        "bias": {"shape": [4], "dtype": "float32", "trainable": True},
    }
    assert layers["b"]["parameters"] == {}  # its weight belongs to a, which owns it first
    assert layers["a"]["outputs"] == [[[2, 4]], [[2, 4]]]  # called twice
    assert layers["norm"]["buffers"]["num_batches_tracked"] == {
        "shape": [],
        "dtype": "int64",
        "persistent": True,
    }
    assert layers[""]["type"] == "TiedNet"


def test_no_input_means_no_shapes() -> None:
    loaded = LoadedModel(source="t", kind="t", build=lambda device: nn.Linear(2, 3).to(device))
    fp = fingerprint(introspect(loaded, device="cpu"))
    assert fp["inputs"] == [] and fp["output_shapes"] is None
    assert fp["layers"] == [
        {
            "name": "",
            "type": "Linear",
            "parameters": {
                "weight": {"shape": [3, 2], "dtype": "float32", "trainable": True},
                "bias": {"shape": [3], "dtype": "float32", "trainable": True},
            },
            "buffers": {},
            "outputs": [],
        }
    ]


def test_bytes_are_stable_and_diff_friendly(tiny_config: Path) -> None:
    first = dumps_fingerprint(fingerprint(load_and_introspect(tiny_config)))
    second = dumps_fingerprint(fingerprint(load_and_introspect(tiny_config)))
    assert first == second
    text = first.decode()
    assert '"shape": [1, 3, 64, 64],' in text  # a shape is one line
    # tiny: stages stride 2 twice -> 32x32 and 16x16; A=2 anchors, 3 classes + 5 = 8 per anchor
    assert "    [1, 2, 32, 32, 8],\n    [1, 2, 16, 16, 8]\n" in text
    assert text.endswith("}\n") and "\r" not in text
    assert "485340" not in text and "timestamp" not in text and str(tiny_config) not in text


def test_same_bytes_in_another_process(tiny_config: Path, tmp_path: Path) -> None:
    here = tmp_path / "here.json"
    write_baseline(here, fingerprint(load_and_introspect(tiny_config)))
    there = tmp_path / "there.json"
    subprocess.run(
        [sys.executable, "-m", "gai_meta", "lock", str(tiny_config), "--baseline", str(there)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    assert here.read_bytes() == there.read_bytes()
    total = gai_params(8, 2, 16, 3, [2, 2])
    assert read_baseline(there)["totals"]["parameters"] == total


# -- reading baselines ------------------------------------------------------------------------


def _small_doc() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "model": {"class": "Net", "module": "m"},
        "inputs": [{"name": None, "shape": [1, 4], "dtype": "float32"}],
        "totals": {
            "parameters": 20,
            "trainable": 20,
            "buffers": 0,
            "parameter_bytes": 80,
            "buffer_bytes": 0,
            "bytes": 80,
        },
        "output_shapes": [[1, 4]],
        "layers": [
            {"name": "", "type": "Net", "parameters": {}, "buffers": {}, "outputs": [[[1, 4]]]},
            {
                "name": "fc",
                "type": "Linear",
                "parameters": {
                    "weight": {"shape": [4, 4], "dtype": "float32", "trainable": True},
                    "bias": {"shape": [4], "dtype": "float32", "trainable": True},
                },
                "buffers": {},
                "outputs": [[[1, 4]]],
            },
        ],
    }


def test_baseline_round_trip(tmp_path: Path) -> None:
    path = write_baseline(tmp_path / "a.json", _small_doc())
    assert read_baseline(path) == _small_doc()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, found list"),
        (b'{"schema_version": "1"}', "schema_version is '1'"),
        (b'{"schema_version": 1}', "'model' is missing"),
        (b'{"schema_version": 7, "model": {}}', "newer gai-meta (schema_version 7"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_baselines(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "architecture.lock.json"
    path.write_bytes(content)
    with pytest.raises(BaselineError) as info:
        read_baseline(path)
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_missing_baseline_says_lock(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="run `gai-meta lock`"):
        read_baseline(tmp_path / "nope.json")


# -- drift ------------------------------------------------------------------------------------


def test_no_drift_for_equal_documents() -> None:
    drift = diff_fingerprints(_small_doc(), _small_doc())
    assert not drift.has_drift and render_drift(drift) == []


def test_drift_report_names_every_change() -> None:
    old = _small_doc()
    new = copy.deepcopy(old)
    fc = new["layers"][1]
    fc["parameters"]["weight"]["shape"] = [8, 4]
    fc["parameters"]["bias"]["shape"] = [8]
    fc["outputs"] = [[[1, 8]]]
    new["layers"].append(
        {
            "name": "out",
            "type": "Linear",
            "parameters": {"weight": {"shape": [4, 8], "dtype": "float32", "trainable": True}},
            "buffers": {},
            "outputs": [[[1, 4]]],
        }
    )
    new["output_shapes"] = [[1, 4], [1, 8]]
    # parameters: fc 8*4 + 8 = 40, out 4*8 = 32 -> 72 (was 20); bytes 72*4 = 288
    new["totals"].update(parameters=72, trainable=72, parameter_bytes=288, bytes=288)
    drift = diff_fingerprints(old, new)
    assert drift.has_drift
    assert drift.totals["parameters"] == (20, 72)
    assert drift.added == (("out", "Linear"),) and drift.removed == ()
    assert render_drift(drift) == [
        "parameters: 20 -> 72 (+52)",
        "trainable: 20 -> 72 (+52)",
        "parameter_bytes: 80 -> 288 (+208)",
        "bytes: 80 -> 288 (+208)",
        "output shapes: [[1, 4]] -> [[1, 4], [1, 8]]",
        "layers added (1):",
        "  out (Linear)",
        "layers changed (1):",
        "  fc (Linear): parameter weight shape [4, 4] -> [8, 4]; "
        "parameter bias shape [4] -> [8]; outputs [[1, 4]] -> [[1, 8]]",
    ]
    back = diff_fingerprints(new, old)
    assert back.removed == (("out", "Linear"),)
    assert render_drift(back)[0] == "parameters: 72 -> 20 (-52)"


def test_drift_type_dtype_inputs_and_order() -> None:
    old = _small_doc()
    new = copy.deepcopy(old)
    new["layers"][1]["type"] = "LazyLinear"
    new["layers"][1]["parameters"]["bias"]["dtype"] = "bfloat16"
    del new["layers"][1]["parameters"]["weight"]
    new["inputs"][0]["shape"] = [2, 4]
    lines = render_drift(diff_fingerprints(old, new))
    assert lines == [
        "inputs: input [1, 4] float32 -> input [2, 4] float32",
        "(output shapes follow the inputs; to check at the locked inputs pass --input-shape 1,4 "
        "or set input_shape = [1, 4] in [tool.gai-meta])",
        "layers changed (1):",
        "  fc (LazyLinear): type Linear -> LazyLinear; parameter weight removed ([4, 4]); "
        "parameter bias dtype float32 -> bfloat16",
    ]
    swapped = copy.deepcopy(old)
    swapped["layers"].reverse()
    drift = diff_fingerprints(old, swapped)
    assert drift.has_drift and drift.other == ("layer order changed",)


def test_layers_whose_only_change_is_their_outputs_are_listed_apart() -> None:
    old = _small_doc()
    new = copy.deepcopy(old)
    new["layers"][0]["outputs"] = [[[1, 5]]]
    new["layers"][1]["outputs"] = [[[1, 5]]]
    new["layers"][1]["parameters"]["bias"]["trainable"] = False
    assert render_drift(diff_fingerprints(old, new)) == [
        "layers changed (1):",
        "  fc (Linear): parameter bias trainable True -> False; outputs [[1, 4]] -> [[1, 5]]",
        "layer outputs changed (1):",
        "  (root) (Net): outputs [[1, 4]] -> [[1, 5]]",
    ]


def test_long_lists_are_capped() -> None:
    old = _small_doc()
    new = copy.deepcopy(old)
    for i in range(30):
        new["layers"].append(
            {"name": f"x{i}", "type": "ReLU", "parameters": {}, "buffers": {}, "outputs": []}
        )
    lines = render_drift(diff_fingerprints(old, new), limit=25)
    assert lines[0] == "layers added (30):"
    assert lines[-1] == "  ... and 5 more" and len(lines) == 1 + 25 + 1


# -- budgets ----------------------------------------------------------------------------------

SEED_TOTALS = {"parameters": 485_340, "bytes": 1_947_872}  # seed example: parameters + buffers


def test_budgets_within_limits() -> None:
    fp = {"totals": SEED_TOTALS, "output_shapes": [[1, 2, 160, 160, 15]]}
    budgets = Budgets(
        max_parameters=485_340,
        max_size_mb=2.0,
        max_flops=10.0,
        output_shapes=((1, 2, 160, 160, 15),),
    )
    assert check_budgets(fp, budgets, flops=lambda: 10) == []


def test_broken_budgets_name_limit_and_value() -> None:
    fp = {"totals": SEED_TOTALS, "output_shapes": [[1, 2, 160, 160, 15]]}
    budgets = Budgets(
        max_parameters=400_000,
        max_size_mb=1.5,  # 1.5 * 2**20 = 1,572,864 bytes < 1,947,872
        max_flops=1e6,
        output_shapes=((1, 2, 80, 80, 15),),
    )
    found = check_budgets(fp, budgets, flops=lambda: 2_500_000)
    assert [v.budget for v in found] == [
        "max_parameters",
        "max_size_mb",
        "max_flops",
        "output_shapes",
    ]
    assert [v.message() for v in found] == [
        "budget max_parameters broken: limit 400,000, value 485,340 (85,340 over)",
        # 1,947,872 / 2**20 = 1.8576 MB
        "budget max_size_mb broken: limit 1.5 MB, value 1.86 MB "
        "(1,947,872 bytes of parameters and buffers)",
        "budget max_flops broken: limit 1,000,000, value 2,500,000 (1,500,000 over)",
        "budget output_shapes broken: expected [[1, 2, 80, 80, 15]], found [[1, 2, 160, 160, 15]]",
    ]


def test_flops_counted_only_when_budgeted() -> None:
    def boom() -> int:
        raise AssertionError("FLOPs were counted without a max_flops budget")

    assert check_budgets({"totals": SEED_TOTALS}, Budgets(max_parameters=10**9), flops=boom) == []
    missing = BudgetViolation("output_shapes", [[1, 2]], None)
    assert "none (no input shape is known; set input_shape)" in missing.message()
