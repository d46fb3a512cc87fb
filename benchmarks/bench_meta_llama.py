"""Llama-2-7B geometry on the meta device: gai-meta against torchinfo, whole processes.

Both sides build ``LlamaForCausalLM(LlamaConfig(hidden_size=4096, intermediate_size=11008,
num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, vocab_size=32000))`` under
``torch.device("meta")`` and run one forward on ``input_ids`` [1, 16]:
  A) ``python -m gai_meta summarize bench_llama_factory:llama7b --device meta --input
     input_ids=1,16:int64 -q`` (writes model_summary.json and model_parameters.json)
  B) a script calling ``torchinfo.summary(model, input_data=..., device="meta")``
  C) the same as A through the library (``gai_meta.summary.summarize``), without the CLI layer
run alternately, each in a fresh process (imports included), ``--rounds`` times. Wall time and
peak RSS (``ru_maxrss`` of that child, from ``os.wait4``) are reported as medians, with ratios
A/B and C/B (goal <= 1.0 on both). Both must report 6,738,415,616 parameters.

    python benchmarks/bench_meta_llama.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPECTED = 6_738_415_616

FACTORY = """
from transformers import LlamaConfig, LlamaForCausalLM


def llama7b():
    return LlamaForCausalLM(LlamaConfig(hidden_size=4096, intermediate_size=11008,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, vocab_size=32000))
"""

TORCHINFO = """
import torch, torchinfo
from bench_llama_factory import llama7b

with torch.device("meta"):
    model = llama7b()
ids = torch.zeros(1, 16, dtype=torch.long, device="meta")
stats = torchinfo.summary(model, input_data={"input_ids": ids}, device="meta", verbose=0)
print(stats.total_params)
"""

LIBRARY = """
import sys
from gai_meta.inputs import parse_inputs
from gai_meta.summary import summarize

result = summarize("bench_llama_factory:llama7b", device="meta", out=sys.argv[1],
                   inputs=parse_inputs(None, ["input_ids=1,16:int64"]))
print(result.documents["model_summary.json"]["total_parameters"])
"""


def _run(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, stdout) of one child process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(cwd)])}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return wall, usage.ru_maxrss * 1024, out  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench_llama_factory.py").write_text(FACTORY)
        (work / "torchinfo_meta.py").write_text(TORCHINFO)
        (work / "library.py").write_text(LIBRARY)
        gai = [
            sys.executable, "-m", "gai_meta", "summarize", "bench_llama_factory:llama7b",
            "--device", "meta", "--input", "input_ids=1,16:int64", "-o", str(work / "out"), "-q",
        ]  # fmt: skip
        ti = [sys.executable, str(work / "torchinfo_meta.py")]
        lib = [sys.executable, str(work / "library.py"), str(work / "out_lib")]
        _run(ti, work)  # warm the file cache for both (same imports)
        a_time, a_rss, b_time, b_rss, c_time, c_rss = [], [], [], [], [], []
        for _ in range(args.rounds):
            t, r, _ = _run(gai, work)
            a_time.append(t)
            a_rss.append(r)
            t, r, out = _run(ti, work)
            b_time.append(t)
            b_rss.append(r)
            assert int(out.split()[-1]) == EXPECTED, out
            t, r, out = _run(lib, work)
            c_time.append(t)
            c_rss.append(r)
            assert int(out.split()[-1]) == EXPECTED, out
        import json

        summary = json.loads((work / "out" / "metadata" / "model_summary.json").read_text())
        assert summary["total_parameters"] == EXPECTED, summary["total_parameters"]

    ta, tb = statistics.median(a_time), statistics.median(b_time)
    ra, rb = statistics.median(a_rss), statistics.median(b_rss)
    tc, rc = statistics.median(c_time), statistics.median(c_rss)
    print(
        f"Llama-2-7B geometry on meta, forward on input_ids [1, 16], {args.rounds} rounds (median)"
    )
    print(f"  gai-meta summarize: {ta:6.2f} s  {ra / 2**20:7.1f} MiB peak RSS")
    print(f"  torchinfo.summary:  {tb:6.2f} s  {rb / 2**20:7.1f} MiB peak RSS")
    print(f"  gai_meta library:   {tc:6.2f} s  {rc / 2**20:7.1f} MiB peak RSS")
    print(f"  ratio gai-meta CLI/torchinfo: time {ta / tb:.2f}x, peak RSS {ra / rb:.2f}x")
    print(f"  ratio gai_meta library/torchinfo: time {tc / tb:.2f}x, peak RSS {rc / rb:.2f}x")


if __name__ == "__main__":
    main()
