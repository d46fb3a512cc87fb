"""How long `gai-meta history` takes to read losses from checkpoints, against plain torch.load.

Writes N checkpoints of a ~40 MB model into a temp folder, then alternates, in one process:
  A) gai_meta.history.read_history (weights_only=True, mmap=True: the weights are mapped)
  B) torch.load(weights_only=True) of every checkpoint, reading its epoch and losses
and prints the median times and the ratio A/B (lower is better; goal < 1.0).

    python benchmarks/bench_history.py [--checkpoints 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoints", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    from gai_meta.history import read_history

    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "checkpoints"
        ck.mkdir()
        weights = {f"layer{i}.weight": torch.randn(1024, 1024) for i in range(10)}  # 40 MB
        for epoch in range(1, args.checkpoints + 1):
            torch.save(
                {
                    "model_state_dict": weights,
                    "epoch": epoch,
                    "train_loss": 1.0 / epoch,
                    "val_loss": 1.1 / epoch,
                },
                ck / f"epoch_{epoch:03d}.pt",
            )

        def plain() -> list[tuple[int, float]]:
            out = []
            for path in sorted(ck.glob("epoch_*.pt")):
                obj = torch.load(path, map_location="cpu", weights_only=True)
                out.append((obj["epoch"], obj["train_loss"]))
            return out

        times_a, times_b = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            hist = read_history(ck)
            times_a.append(time.perf_counter() - start)
            start = time.perf_counter()
            rows = plain()
            times_b.append(time.perf_counter() - start)
        assert [e.epoch for e in hist.epochs] == [r[0] for r in rows]
        a, b = statistics.median(times_a), statistics.median(times_b)
        print(f"{args.checkpoints} checkpoints of 40 MB, {args.rounds} rounds (median)")
        print(f"  read_history (mmap):      {a * 1000:8.1f} ms")
        print(f"  torch.load (full read):   {b * 1000:8.1f} ms")
        print(f"  ratio read_history/plain: {a / b:8.2f}x")


if __name__ == "__main__":
    main()
