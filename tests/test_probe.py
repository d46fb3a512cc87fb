"""The probe: output shapes of every call, any output structure, hooks always removed."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import pytest
import torch
from torch import nn

from gai_meta.errors import ForwardError
from gai_meta.probe import iter_tensors, probe


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    extra: dict[str, torch.Tensor]


Pair = namedtuple("Pair", ["a", "b"])


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.register_buffer("table", torch.zeros(7, 2))

    def forward(self, x: torch.Tensor) -> list[object]:
        y = self.lin(x)
        y = self.lin(torch.zeros(2, 4))  # the same module called twice
        return [Out(y, {"h": x * 2}), Pair(x.sum(0), (self.table, y[:1]))]


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_nested_outputs_and_repeated_calls() -> None:
    model = Nested()
    result = probe(model, (torch.zeros(5, 4),))
    # leaves in order: Out.logits [2,3], Out.extra.h [5,4], Pair.a [4], (table skipped), y[:1] [1,3]
    assert result.output_shapes == [[2, 3], [5, 4], [4], [1, 3]]
    lin_calls = [c for c in result.calls if c.name == "lin"]
    assert [c.output_shapes for c in lin_calls] == [[[5, 3]], [[2, 3]]]
    assert result.calls[0].name == "" and result.calls[0].depth == 0
    structure = result.output_structure
    assert structure[0]["__class__"] == "Out"
    assert structure[1]["b"][0]["model_tensor"] == "table"
    assert _hook_count(model) == 0


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ok = nn.Linear(4, 4)
        self.bad = nn.Sequential(nn.Linear(5, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bad(self.ok(x))


def test_failing_forward_names_module_and_shapes_and_removes_hooks() -> None:
    model = Broken()
    with pytest.raises(ForwardError) as info:
        probe(model, (torch.zeros(3, 4),))
    msg = str(info.value)
    assert "'bad.0'" in msg and "Linear" in msg and "[[3, 4]]" in msg
    assert "\n" not in msg
    assert _hook_count(model) == 0


def test_meta_device_probe_and_train_mode_restored() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
    model.train()
    result = probe(model, (torch.zeros(2, 3, 32, 32, device="meta"),))
    # (32 + 2*1 - 3) // 2 + 1 = 16
    assert result.output_shapes == [[2, 8, 16, 16]]
    assert result.device == "meta"
    assert model.training


def test_iter_tensors_handles_cycles_and_objects() -> None:
    class Cache:
        def __init__(self) -> None:
            self.keys = [torch.zeros(1, 2)]
            self.me = self

    assert [list(t.shape) for t in iter_tensors({"c": Cache()})] == [[1, 2]]
