"""How fast is an unchanged `gai-meta check`? Subprocess wall time against the alternatives.

Times, in fresh processes (what pre-commit runs), each several times:

* `gai-meta check` answered from the cache (nothing changed since the last passing check),
* `gai-meta --help`,
* `python -c "import torch"` (the floor of any check that loads the model),
* `gai-meta check --no-cache` (a full check: build, dummy forward, fingerprint),

on the seed example config (485,340 parameters) in a temporary project, and prints medians and
ratios. Run: `python benchmarks/bench_check.py [--repeats 15]` from the repository root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _time(cmd: list[str], cwd: Path, env: dict[str, str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-500:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--full-repeats", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        shutil.copy(REPO / "fixtures" / "example_config.yaml", tmp / "model.yaml")
        (tmp / "pyproject.toml").write_text('[tool.gai-meta]\nsource = "model.yaml"\n')
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "GAI_META_CACHE_DIR": str(tmp / "cache"),
        }
        gm = [sys.executable, "-m", "gai_meta"]
        _time([*gm, "lock"], tmp, env, 1)
        out = subprocess.run([*gm, "check"], cwd=tmp, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        hit = subprocess.run([*gm, "check"], cwd=tmp, env=env, capture_output=True, text=True)
        assert "cached" in hit.stdout, hit.stdout + hit.stderr

        rows = {
            "gai-meta check (cached)": _time([*gm, "check"], tmp, env, args.repeats),
            "gai-meta --help": _time([*gm, "--help"], tmp, env, args.repeats),
            "python -c 'import torch'": _time(
                [sys.executable, "-c", "import torch"], tmp, env, args.repeats
            ),
            "python -c pass": _time([sys.executable, "-c", "pass"], tmp, env, args.repeats),
            "gai-meta check --no-cache": _time(
                [*gm, "check", "--no-cache"], tmp, env, args.full_repeats
            ),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cached = statistics.median(rows["gai-meta check (cached)"])
    torch_t = statistics.median(rows["python -c 'import torch'"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians of wall time")
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'/cached':>8} {'/import torch':>14}")
    for name, times in rows.items():
        med = statistics.median(times)
        print(f"{name:<28} {med:9.3f} {min(times):7.3f} {med / cached:8.2f} {med / torch_t:14.3f}")
    print(
        f"cached check: {cached:.3f} s ({'under' if cached < 0.3 else 'OVER'} the 0.3 s goal), "
        f"{torch_t / cached:.1f}x faster than importing torch"
    )


if __name__ == "__main__":
    main()
