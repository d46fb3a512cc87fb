"""Estimated vs measured memory of one CPU step of GAI-YOLOv12, next to torchinfo's estimate.

For each config and batch size: gai-meta's training and inference peaks (fake tensors), the
measured peak of a real step in a fresh process (gai_meta._measure) under glibc's default
allocator and with its dynamic mmap threshold pinned (``MALLOC_MMAP_THRESHOLD_``, which
removes the allocator's run-to-run noise), and torchinfo's "Estimated Total Size" for the
same input. Ratios are estimate / measured (1.00 = exact).

    python benchmarks/bench_memory.py                 # default run, a few minutes on 2 cores
    python benchmarks/bench_memory.py --repeat 3      # noise: min..max of 3 measurements
    python benchmarks/bench_memory.py --full          # adds the reference config at batch 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gai_meta._measure import measure  # noqa: E402
from gai_meta.estimates import estimate_memory  # noqa: E402
from tests.memory_nets import gai_yolo  # noqa: E402

MB = 2**20
PINNED = {"MALLOC_MMAP_THRESHOLD_": "131072"}

# The seed's published example, and the geometry of /work/shared/reference/configs/config.yaml
# (base 64, depth 3, hidden 128, default anchors, 640x640).
CONFIGS: dict[str, dict[str, Any]] = {
    "seed-example 320": {},
    "reference 640": {
        "input_size": [640, 640],
        "backbone_params": {"base_channels": 64, "depth": 3},
        "anchors": None,
    },
}
BATCHES = {"seed-example 320": [1, 4, 8], "reference 640": [1, 2]}


def _model_section(name: str) -> dict[str, Any]:
    section = dict(CONFIGS[name])
    if section.get("anchors", 0) is None:  # the reference config leaves anchors to defaults
        section["anchors"] = [
            [[10, 13], [16, 30], [33, 23]],
            [[30, 61], [62, 45], [59, 119]],
            [[116, 90], [156, 198], [373, 326]],
        ]
    return section


def _torchinfo_mb(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    import torchinfo

    stats = torchinfo.summary(model, input_size=shape, verbose=0, device="cpu")
    total = stats.total_input + stats.total_output_bytes + stats.total_param_bytes
    return float(total) / MB


def _measured(
    name: str, shape: list[int], batch: int, mode: str, env: dict[str, str], repeat: int
) -> list[float]:
    kwargs = _model_section(name)
    return [
        measure(
            "tests.memory_nets:gai_yolo",
            [shape],
            batch_size=batch,
            mode=mode,
            factory_kwargs=kwargs,
            env=env,
        ).peak_mb
        for _ in range(repeat)
    ]


def _fmt(values: list[float]) -> str:
    mid = statistics.median(values)
    if len(values) == 1:
        return f"{mid:9.1f}"
    return f"{mid:9.1f} ({min(values):.0f}..{max(values):.0f})"


def _ratio(est: float, values: list[float]) -> str:
    r = [est / v for v in values]
    if len(r) == 1:
        return f"{r[0]:.2f}"
    return f"{statistics.median(r):.2f} ({min(r):.2f}..{max(r):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="measurements per cell (noise)")
    parser.add_argument("--full", action="store_true", help="also the reference at batch 4")
    parser.add_argument("--no-torchinfo", action="store_true")
    args = parser.parse_args()
    if args.full:
        BATCHES["reference 640"].append(4)

    header = (
        f"{'config':18s} {'B':>2s} {'mode':5s} {'tensors':>9s} {'measured':>22s} "
        f"{'ratio':>17s} {'pinned':>9s} {'ratio':>5s} {'gai-meta':>9s} {'ratio':>17s} "
        f"{'torchinfo':>9s} {'ti ratio':>8s}"
    )
    print(header)
    print("-" * len(header))
    for name in CONFIGS:
        section = _model_section(name)
        model = gai_yolo(**section)
        size = section.get("input_size", [320, 320])
        shape = [1, 3, *size]
        for batch in BATCHES[name]:
            est = estimate_memory(model, (torch.zeros(shape),), batch_size=batch)
            ti = None if args.no_torchinfo else _torchinfo_mb(model, (batch, *shape[1:]))
            for mode in ("train", "infer"):
                mmode = "train" if mode == "train" else "inference"
                rss = est.training_peak_mb if mode == "train" else est.inference_peak_mb
                value = (
                    est.training_tensor_peak_mb if mode == "train" else est.inference_tensor_peak_mb
                )
                default = _measured(name, shape, batch, mmode, {}, args.repeat)
                pinned = _measured(name, shape, batch, mmode, PINNED, 1)
                ti_cols = ""
                if ti is not None and mode == "train":
                    ti_cols = f" {ti:9.1f} {ti / statistics.median(default):8.2f}"
                print(
                    f"{name:18s} {batch:2d} {mode:5s} {value:9.1f} {_fmt(default):>22s} "
                    f"{_ratio(value, default):>17s} {pinned[0]:9.1f} "
                    f"{value / pinned[0]:5.2f} {rss:9.1f} {_ratio(rss, default):>17s}{ti_cols}",
                    flush=True,
                )
    print(
        "\nmeasured: VmHWM of a fresh process doing one step (after a batch-1 warm-up), minus "
        "its RSS before building the model; pinned: the same with MALLOC_MMAP_THRESHOLD_=131072;\n"
        "gai-meta: training/inference_peak_mb (glibc model), compared with measured; "
        "tensors: *_tensor_peak_mb (live tensors), compared with measured and pinned."
    )


if __name__ == "__main__":
    main()
