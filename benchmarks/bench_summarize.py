"""gai-meta summarize vs a torchinfo.summary + JSON dump script, on the seed example.

Both run as fresh processes (imports included, as a user sees them), alternating, several
rounds; prints each one's median wall time and peak RSS and the ratio gai-meta / torchinfo.
Goal: ratio <= 1.0.

    python benchmarks/bench_summarize.py [--rounds 5] [--config fixtures/example_config.yaml]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TORCHINFO_SCRIPT = """
import json, sys
import torch, torchinfo, yaml
from gai_meta.models import build_model, model_config_from_mapping
cfg = model_config_from_mapping(yaml.safe_load(open(sys.argv[1]))["model"])
model = build_model(cfg)
stats = torchinfo.summary(model, input_size=(1, cfg.input_channels, *cfg.input_size), verbose=0)
layers = [
    {"name": l.var_name, "type": l.class_name, "depth": l.depth,
     "output_shape": l.output_size, "params": l.num_params}
    for l in stats.summary_list
]
json.dump({"total_params": stats.total_params, "trainable_params": stats.trainable_params,
           "layers": layers}, open(sys.argv[2], "w"))
"""


def _measure(cmd: list[str]) -> tuple[float, float]:
    wrapper = (
        "import resource, subprocess, sys, time;"
        "t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
        "w = time.perf_counter() - t;"
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--config", default=str(REPO / "fixtures" / "example_config.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "torchinfo_summary.py"
        script.write_text(TORCHINFO_SCRIPT)
        ours = [sys.executable, "-m", "gai_meta", "summarize", args.config, "--out", tmp, "-q"]
        library = (
            "import sys; from gai_meta.summary import summarize; "
            "summarize(sys.argv[1], out=sys.argv[2], with_estimates=False)"
        )
        commands = {
            "gai-meta --no-estimates": [*ours, "--no-estimates"],
            "library, no estimates": [sys.executable, "-c", library, args.config, tmp],
            "gai-meta (with estimates)": ours,
            "torchinfo": [sys.executable, str(script), args.config, str(Path(tmp) / "ti.json")],
        }
        for cmd in commands.values():
            _measure(cmd)  # warm the file cache
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                results[name].append(_measure(cmd))
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(r for _, r in v))
        for k, v in results.items()
    }
    base_wall, base_rss = med["torchinfo"]
    for name, (wall, rss) in med.items():
        print(
            f"{name:26s} wall {wall:6.3f} s  peak RSS {rss:7.1f} MiB"
            f"  vs torchinfo: wall {wall / base_wall:.2f}x, RSS {rss / base_rss:.2f}x"
        )
    print("goal: gai-meta --no-estimates <= 1.0x (the same work as torchinfo); the default run")
    print("also replays a training step on fake tensors for memory_estimate and compute.")


if __name__ == "__main__":
    main()
