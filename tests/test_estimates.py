"""FLOPs and memory estimates: hand-worked numbers, PyTorch's own counter, and real steps."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gai_meta.errors import UsageError
from gai_meta.estimates import count_compute, estimate_memory, largest_batch_size
from tests.memory_nets import conv_net, gai_yolo, mlp

MB = 2**20

# ------------------------------------------------------------------------------- compute


def test_linear_flops_by_hand() -> None:
    est = count_compute(nn.Linear(4, 3), (torch.zeros(2, 4),))
    # addmm: 2 FLOPs per multiply-add; batch 2 x in 4 x out 3 = 24 MACs
    assert est.flops == 48
    assert est.macs == 24
    assert est.uncounted == []


def test_conv_flops_by_hand_and_per_module_prefixes() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.conv11 = nn.Conv2d(8, 4, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv11(self.conv1(x))

    est = count_compute(Net(), (torch.zeros(1, 3, 16, 16),))
    conv1 = 2 * (8 * 16 * 16) * (3 * 3 * 3)  # 2 * outputs * (cin * k * k) = 110,592
    conv11 = 2 * (4 * 16 * 16) * 8  # = 16,384
    assert est.per_module["conv1"] == conv1  # not conv1 + conv11: no prefix collision
    assert est.per_module["conv11"] == conv11
    assert est.per_module[""] == est.flops == conv1 + conv11


def test_flops_equal_pytorch_counter_on_real_forward_and_meta() -> None:
    model = gai_yolo().eval()
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    real = counter.get_total_flops()
    assert count_compute(model, (x,)).flops == real
    meta = gai_yolo().to("meta")
    assert count_compute(meta, (torch.zeros(1, 3, 320, 320, device="meta"),)).flops == real


def test_ops_without_formula_are_listed_with_their_module() -> None:
    class Spectral(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft(x).abs()

    model = nn.Sequential(nn.Linear(8, 8), nn.SiLU(), Spectral())
    est = count_compute(model, (torch.zeros(2, 8),))
    assert est.flops == 2 * 2 * 8 * 8  # only the Linear: 256
    assert est.uncounted == ["aten._fft_r2c"]  # silu/abs are pointwise: zero by convention
    assert est.uncounted_modules == {"aten._fft_r2c": ["2"]}
    assert est.to_json()["uncounted"] == [{"op": "aten._fft_r2c", "modules": ["2"]}]


# ------------------------------------------------------------------------------- memory


def test_memory_parts_by_hand_adamw() -> None:
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    est = estimate_memory(model, (torch.zeros(1, 64),), batch_size=8)
    params = (64 * 128 + 128 + 128 * 10 + 10) * 4  # 38,952 bytes
    assert est.parameters_mb == round(params / MB, 2)
    assert est.gradients_mb == round(params / MB, 2)
    # exp_avg + exp_avg_sq per parameter, plus a 4-byte step tensor per parameter tensor
    assert est.optimizer_state_mb == round((2 * params + 4 * 4) / MB, 2)
    assert est.input_mb == round(8 * 64 * 4 / MB, 2)
    # saved for backward: the ReLU output (8 x 128 floats), reused by the second Linear
    assert est.per_module == {"": 8 * 128 * 4, "1": 8 * 128 * 4}
    assert est.batch_size == 8 and est.optimizer == "adamw" and est.dtype == "float32"


def test_optimizer_state_sgd_and_frozen_parameters() -> None:
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
    model[0].requires_grad_(False)
    x = (torch.zeros(1, 256),)
    trainable = (256 * 256 + 256) * 4  # only the second Linear: 263,168 bytes
    sgd = estimate_memory(model, x, batch_size=4, optimizer="sgd")
    assert sgd.gradients_mb == round(trainable / MB, 2)
    assert sgd.optimizer_state_mb == round(trainable / MB, 2)  # one momentum buffer
    plain = estimate_memory(model, x, batch_size=4, optimizer="sgd", momentum=0.0)
    assert plain.optimizer_state_mb == 0.0
    adamw = estimate_memory(model, x, batch_size=4)
    assert adamw.optimizer_state_mb == round((2 * trainable + 2 * 4) / MB, 2)


def test_batch_size_rescales_inputs_and_activations() -> None:
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    small = estimate_memory(model, (torch.zeros(3, 64),), batch_size=1)
    large = estimate_memory(model, (torch.zeros(3, 64),), batch_size=32)
    assert small.per_module[""] == 1 * 128 * 4
    assert large.per_module[""] == 32 * 128 * 4
    assert large.input_mb == round(32 * 64 * 4 / MB, 2)


def test_keyword_and_integer_inputs_are_rebatched() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(100, 32)
            self.head = nn.Linear(32, 5)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(input_ids)) * attention_mask.unsqueeze(-1)

    ids = torch.zeros(1, 16, dtype=torch.int64)
    mask = torch.ones(1, 16, dtype=torch.int64)
    est = estimate_memory(Tagger(), (), {"input_ids": ids, "attention_mask": mask}, batch_size=8)
    assert est.input_mb == round(2 * 8 * 16 * 8 / MB, 2)  # two int64 (8-byte) 8x16 tensors
    # the Linear saves the embedding output (8 x 16 x 32 floats); the product saves only the
    # mask (an input, not counted): the Linear output's gradient needs the mask, not itself
    assert est.per_module[""] == 8 * 16 * 32 * 4
    flops = count_compute(Tagger(), (), {"input_ids": ids, "attention_mask": mask}).flops
    assert flops == 2 * 16 * 32 * 5  # the Linear only: 5,120


def test_dtype_halves_parameters_and_amp_keeps_them() -> None:
    model = nn.Linear(1024, 1024)
    x = (torch.zeros(1, 1024),)
    bf16 = estimate_memory(model, x, batch_size=2, dtype=torch.bfloat16)
    assert bf16.parameters_mb == round((1024 * 1024 + 1024) * 2 / MB, 2)  # 2.0 MB
    assert bf16.dtype == "bfloat16"
    amp = estimate_memory(model, x, batch_size=2, amp=True)
    assert amp.parameters_mb == round((1024 * 1024 + 1024) * 4 / MB, 2)  # 4.0 MB
    assert amp.dtype == "float32" and amp.amp_dtype == "bfloat16"


def test_model_left_unchanged() -> None:
    model = gai_yolo()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate_memory(model, (torch.zeros(1, 3, 64, 64),), batch_size=2)
    count_compute(model, (torch.zeros(1, 3, 64, 64),))
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert not nn.modules.module._global_forward_hooks
    assert not nn.modules.module._global_forward_pre_hooks


def test_big_batch_costs_nothing() -> None:
    est = estimate_memory(gai_yolo().to("meta"), (torch.zeros(1, 3, 640, 640),), batch_size=256)
    assert est.input_mb == round(256 * 3 * 640 * 640 * 4 / MB, 2)  # 1200.0 MB, never allocated
    assert est.training_peak_mb >= est.training_tensor_peak_mb > est.activations_mb
    assert est.inference_peak_mb >= est.inference_tensor_peak_mb


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch size must be a positive integer"),
        ({"batch_size": -4}, "batch size must be a positive integer"),
        ({"batch_size": "8"}, "batch size must be a positive integer"),
        ({"batch_size": True}, "batch size must be a positive integer"),
        ({"batch_size": 2, "optimizer": "lion"}, "unknown optimizer 'lion'"),
        ({"batch_size": 2, "dtype": torch.int8}, "dtype must be a floating torch.dtype"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        estimate_memory(nn.Linear(2, 2), (torch.zeros(1, 2),), **kwargs)
    assert err.value.exit_code == 2


def test_largest_batch_size_search() -> None:
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 10))
    x = (torch.zeros(1, 256),)
    limit = 24 * MB
    found, est = largest_batch_size(model, x, max_memory_bytes=limit)
    assert est.batch_size == found > 1
    # the boundary: batch `found` fits, one more does not
    assert estimate_memory(model, x, batch_size=found).training_peak_bytes <= limit
    assert estimate_memory(model, x, batch_size=found + 1).training_peak_bytes > limit
    none, first = largest_batch_size(model, x, max_memory_bytes=1)
    assert none == 0 and first.batch_size == 1


def test_glibc_model_by_hand() -> None:
    from gai_meta.estimates import _glibc_peak

    kib = 1024
    # a (200 KiB) is freed, so the steady-state mmap threshold is 200 KiB: a is mmapped,
    # b (100 KiB) comes from the heap.
    events = [(1, 200 * kib), (1, -1), (2, 100 * kib)]
    a = -(-(200 * kib + 16 + 63) // 64 * 64 // 4096) * 4096  # 51 pages = 208,896 bytes
    b_top = (100 * kib + 16 + 63) // 64 * 64  # 102,464 bytes of heap
    brk = -(-(b_top + 128 * kib) // 4096) * 4096  # plus glibc's 128 KiB top pad: 237,568
    assert a == 208_896 and brk == 237_568
    assert _glibc_peak(events) == max(a, brk)
    # freed heap memory stays resident: a hole that is too small for c makes the heap grow
    # (threshold stays 128 KiB: nothing freed is larger)
    small = [(1, 50 * kib), (2, 50 * kib), (1, -1), (3, 100 * kib)]
    one = (50 * kib + 16 + 63) // 64 * 64  # 51,264
    three = (100 * kib + 16 + 63) // 64 * 64  # 102,464
    grown = -(-(2 * one + three + 128 * kib) // 4096) * 4096  # 339,968
    assert grown == 339_968
    assert _glibc_peak(small) == grown


# ------------------------------------------------------------------- against real CPU steps
# Each test runs the step in a fresh subprocess (gai_meta._measure). The live-tensor peak is
# compared with a step run with glibc's dynamic mmap threshold pinned (MALLOC_MMAP_THRESHOLD_),
# which removes the allocator's caching and its run-to-run noise (±10% otherwise; see
# docs/estimates.md); the glibc-model peak (training_peak_mb) with a step under default glibc.
# The bound is the 15%.

PINNED = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _check(
    factory: str,
    model: nn.Module,
    shape: tuple[int, ...],
    batch: int,
    *,
    mode: str = "train",
    optimizer: str = "adamw",
    kwargs: dict[str, Any] | None = None,
    default_glibc: bool = False,
) -> None:
    from gai_meta._measure import measure

    est = estimate_memory(model, (torch.zeros(shape),), batch_size=batch, optimizer=optimizer)
    real = measure(
        factory,
        [shape],
        batch_size=batch,
        mode=mode,
        optimizer=optimizer,
        factory_kwargs=kwargs,
        env=None if default_glibc else PINNED,
    )
    if default_glibc:
        estimate = est.training_peak_mb if mode == "train" else est.inference_peak_mb
    else:
        estimate = est.training_tensor_peak_mb if mode == "train" else est.inference_tensor_peak_mb
    ratio = estimate / real.peak_mb
    assert 0.85 <= ratio <= 1.15, f"estimate {estimate:.1f} MB vs measured {real.peak_mb:.1f} MB"


def test_conv_net_training_step_matches_measured() -> None:
    _check("tests.memory_nets:conv_net", conv_net(), (1, 3, 256, 256), 8)


def test_conv_net_inference_matches_measured() -> None:
    _check("tests.memory_nets:conv_net", conv_net(), (1, 3, 256, 256), 8, mode="inference")


def test_mlp_training_step_matches_measured_sgd() -> None:
    _check(
        "tests.memory_nets:mlp", mlp(2048), (1, 2048), 256, optimizer="sgd", kwargs={"width": 2048}
    )


def test_frozen_backbone_training_step_matches_measured() -> None:
    kw = {"freeze_backbone": True}
    _check("tests.memory_nets:gai_yolo", gai_yolo(**kw), (1, 3, 320, 320), 2, kwargs=kw)


@pytest.mark.slow
def test_gai_yolo_example_training_step_matches_measured() -> None:
    _check("tests.memory_nets:gai_yolo", gai_yolo(), (1, 3, 320, 320), 8)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "inference"])
def test_gai_yolo_glibc_model_matches_default_allocator(mode: str) -> None:
    shape = (1, 3, 320, 320)
    _check("tests.memory_nets:gai_yolo", gai_yolo(), shape, 4, mode=mode, default_glibc=True)
