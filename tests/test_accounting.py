"""Accounting: unique tensors, direct ownership, partitions, bytes from dtypes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gai_meta.accounting import account, group, mb
from gai_meta.errors import UsageError


class Tied(nn.Module):
    """An embedding tied to the output projection, like GPT-2's wte / lm_head."""

    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.wte.weight


def test_tied_weights_counted_once() -> None:
    acc = account(Tied())
    # wte 10*4 = 40 (shared with head), body 4*4 + 4 = 20 -> 60, not 100
    assert acc.total == 60
    wte = next(p for p in acc.params if p.name == "wte.weight")
    assert wte.aliases == ("head.weight",)
    assert sum(g.total_params for g in group(acc, "type")) == 60


def test_prefix_collision_conv1_vs_conv111() -> None:
    model = nn.Module()
    model.conv1 = nn.Conv2d(1, 1, 1)  # 1 + 1 = 2
    model.conv111 = nn.Conv2d(1, 2, 1)  # 2 + 2 = 4
    groups = {g.name: g.total_params for g in group(account(model), "layer")}
    assert groups == {"conv1": 2, "conv111": 4}


def test_containers_do_not_double_count() -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Linear(3, 1))
    by_type = {g.name: (g.count, g.total_params) for g in group(account(model), "type")}
    # Linear(2,3): 6+3 = 9; Linear(3,1): 3+1 = 4; Sequential owns nothing directly
    assert by_type == {"Linear": (2, 13)}


def test_bytes_follow_dtype_and_buffers_apart() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model[0].to(torch.bfloat16)
    acc = account(model)
    # Linear in bf16: (16 + 4) * 2 = 40 bytes; BatchNorm weight+bias fp32: 8 * 4 = 32 bytes
    assert acc.parameter_bytes == 72
    # running_mean 4 + running_var 4 fp32 = 32 bytes, num_batches_tracked int64 = 8 bytes
    assert acc.buffer_bytes == 40
    assert acc.buffer_numel == 9
    dtypes = {g.name: g.total_params for g in group(acc, "dtype")}
    assert dtypes == {"bfloat16": 20, "float32": 8}


def test_non_persistent_buffer_flagged() -> None:
    model = nn.Module()
    model.register_buffer("a", torch.zeros(3))
    model.register_buffer("b", torch.zeros(2), persistent=False)
    flags = {b.name: b.persistent for b in account(model).buffers}
    assert flags == {"a": True, "b": False}


def test_trainable_groups_and_root_parameters() -> None:
    model = nn.Module()
    model.scale = nn.Parameter(torch.ones(5))  # owned by the root, name group ""
    model.lin = nn.Linear(2, 2)  # 4 + 2 = 6
    model.lin.weight.requires_grad_(False)
    acc = account(model)
    assert (acc.total, acc.trainable, acc.non_trainable) == (11, 7, 4)
    assert {g.name: g.total_params for g in group(acc, "trainable")} == {
        "trainable": 7,
        "frozen": 4,
    }
    assert {g.name: g.total_params for g in group(acc, "depth")} == {"": 5, "lin": 6}


@pytest.mark.parametrize("by", ["type", "layer", "depth", "dtype", "trainable"])
def test_every_grouping_partitions_the_total(by: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(2))
    model[3] = nn.Linear(8, 2)
    acc = account(model)
    # conv 3*8*9 + 8 = 224, bn 16, linear 16 + 2 = 18 -> 258
    assert acc.total == 258
    assert sum(g.total_params for g in group(acc, by)) == 258
    assert sum(g.bytes for g in group(acc, by)) == 258 * 4


def test_meta_device_gives_same_counts() -> None:
    with torch.device("meta"):
        model = nn.Linear(1000, 1000)
    acc = account(model)
    assert acc.total == 1000 * 1000 + 1000
    assert acc.parameter_bytes == 4 * 1_001_000


def test_unknown_group_key() -> None:
    with pytest.raises(UsageError, match="group-by"):
        group(account(nn.Linear(1, 1)), "colour")


def test_mb_rounds_mebibytes() -> None:
    assert mb(485_340 * 4) == 1.85  # 1,941,360 / 1,048,576 = 1.8514
