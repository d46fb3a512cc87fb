"""Measure the real CPU memory peak of one training step (or one no-grad forward).

Used by the tests and ``benchmarks/bench_memory.py`` to check :mod:`gai_meta.estimates`; not a
user-facing command. Each measurement runs in a fresh subprocess (``python -m gai_meta._measure``)
so nothing cached by an earlier measurement counts:

1. import torch, build the model and run the same step once at batch 1 (pages in the code and
   one-time kernel set-up, which are not tensor memory), free everything, ``malloc_trim(0)``
   so glibc gives freed heap pages back to the OS;
2. read ``VmRSS`` as the baseline and reset the peak (``echo 5 > /proc/self/clear_refs``);
3. build the model again, make the input batch and the optimizer, run exactly one step
   (the very function the estimator replays), and read ``VmHWM``.

The result is ``VmHWM - baseline``: the step's peak with everything allocated before the step
(parameters, buffers, input) included. Linux only.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["Measured", "measure"]


@dataclasses.dataclass(frozen=True)
class Measured:
    """One measured peak: bytes above the baseline, and the raw numbers it came from (kB)."""

    peak_bytes: int
    baseline_kb: int
    hwm_kb: int

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def measure(
    factory: str,
    input_shapes: Sequence[Sequence[int]],
    *,
    batch_size: int,
    mode: str = "train",
    optimizer: str = "adamw",
    dtype: str | None = None,
    amp: bool = False,
    factory_kwargs: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    warmup: bool = True,
    timeout: float = 600.0,
) -> Measured:
    """Run one step of ``factory(**factory_kwargs)`` in a fresh process and return its peak.

    ``factory`` is ``"module:callable"`` importable from the current directory;
    ``input_shapes`` are the shapes of the positional float inputs, batch dimension first
    (it is replaced by ``batch_size``); ``mode`` is ``"train"`` or ``"inference"``.
    """
    spec = {
        "factory": factory,
        "factory_kwargs": factory_kwargs or {},
        "input_shapes": [list(s) for s in input_shapes],
        "batch_size": batch_size,
        "mode": mode,
        "optimizer": optimizer,
        "dtype": dtype,
        "amp": amp,
        "warmup": warmup,
    }
    root = str(Path(__file__).resolve().parent.parent)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.getcwd(), root, child_env.get("PYTHONPATH", "")) if p
    )
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "gai_meta._measure", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measurement failed: {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Measured(
        peak_bytes=(result["hwm_kb"] - result["baseline_kb"]) * 1024,
        baseline_kb=result["baseline_kb"],
        hwm_kb=result["hwm_kb"],
    )


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(spec: dict[str, Any]) -> dict[str, int]:
    import torch

    from gai_meta.estimates import _inference_step, _make_optimizer, _training_step

    module_name, _, attr = spec["factory"].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    dtype = getattr(torch, spec["dtype"]) if spec["dtype"] else None
    amp = bool(spec["amp"])
    cast = None if amp else dtype
    autocast_dtype = (dtype or torch.bfloat16) if amp else None

    def run(batch: int) -> None:
        torch.manual_seed(0)
        model = factory(**spec["factory_kwargs"])
        if cast is not None:
            model = model.to(cast)
        inputs = tuple(
            torch.randn([batch, *shape[1:]], dtype=cast or torch.float32)
            for shape in spec["input_shapes"]
        )
        if spec["mode"] == "train":
            model.train()
            trainable = [p for p in model.parameters() if p.requires_grad]
            opt = _make_optimizer(spec["optimizer"], trainable, momentum=0.9)
            _training_step(model, inputs, {}, opt, autocast_dtype=autocast_dtype)
        else:
            model.eval()
            _inference_step(model, inputs, {}, autocast_dtype=autocast_dtype)

    if spec.get("warmup"):
        run(1)  # warm-up: code pages, kernel set-up
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    baseline = _status_kb("RssAnon")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    run(int(spec["batch_size"]))
    # file-backed pages (library code paged in) only grow during the step: take them out
    hwm = _status_kb("VmHWM") - _status_kb("RssFile") - _status_kb("RssShmem")
    return {"baseline_kb": baseline, "hwm_kb": hwm}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
