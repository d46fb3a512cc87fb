"""Option parsers, ``gai-meta estimate`` and the estimate fields of model_summary.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from gai_meta.errors import UsageError
from gai_meta.options import parse_batch_sizes, parse_dtype, parse_memory, parse_optimizer
from tests.helpers import load, run

# ------------------------------------------------------------------------------- parsers


def test_parsers() -> None:
    assert parse_batch_sizes("1,8,32") == [1, 8, 32]
    assert parse_batch_sizes(" 4 , 4,2") == [4, 2]  # repeats dropped, order kept
    assert parse_memory("24GiB") == 24 * 2**30
    assert parse_memory("512 MiB") == 512 * 2**20
    assert parse_memory("16GB") == 16 * 10**9
    assert parse_memory("1.5gib") == 3 * 2**29
    assert parse_memory("4096") == 4096
    assert parse_dtype("bf16") == "bfloat16"
    assert parse_dtype("torch.float16") == "float16"
    assert parse_optimizer("AdamW") == "adamw"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_batch_sizes("0"), "--batch-size 0 must be at least 1"),
        (lambda: parse_batch_sizes("-2"), "--batch-size -2 must be at least 1"),
        (lambda: parse_batch_sizes("eight"), "'eight' is not a whole number"),
        (lambda: parse_batch_sizes("1.5"), "'1.5' is not a whole number"),
        (lambda: parse_batch_sizes("1,,2"), "has an empty item"),
        (lambda: parse_memory("lots"), "is not a memory size"),
        (lambda: parse_memory("0GiB"), "must be more than 0 bytes"),
        (lambda: parse_memory("3 parsecs"), "is not a memory size"),
        (lambda: parse_dtype("int8"), "'int8' is not a known floating dtype"),
        (lambda: parse_optimizer("lion"), "'lion' is not a known optimizer"),
    ],
)
def test_parser_errors(call: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        call()  # type: ignore[operator]


# ------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "0"], "--batch-size 0 must be at least 1"),
        (["-b", "-1"], "--batch-size -1 must be at least 1"),
        (["-b", "x"], "--batch-size 'x' is not a whole number"),
        (["--optimizer", "lion"], "--optimizer 'lion' is not a known optimizer"),
        (["--dtype", "int4"], "--dtype 'int4' is not a known floating dtype"),
    ],
)
@pytest.mark.parametrize("command", ["estimate", "summarize"])
def test_bad_options_exit_2_one_line(
    command: str, args: list[str], message: str, tiny_config: Path
) -> None:
    result = run(command, tiny_config, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output


def test_bad_max_memory(tiny_config: Path) -> None:
    result = run("estimate", tiny_config, "--max-memory", "9 bananas")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "gai-meta: error: --max-memory '9 bananas' is not a memory size; "
        "pass e.g. 24GiB, 512MiB or 16GB"
    )


def test_estimate_input_shape_option(tiny_config: Path) -> None:
    result = run("estimate", tiny_config, "-b", "2", "--input-shape", "1,3,32,32", "--json")
    assert result.exit_code == 0, result.output
    row = load_json(result.output)["estimates"][0]  # type: ignore[index]
    assert row["input_mb"] == round(2 * 3 * 32 * 32 * 4 / 2**20, 2)  # batch 2 of 3x32x32 floats


def test_estimate_json_and_max_memory(tiny_config: Path) -> None:
    result = run("estimate", tiny_config, "-b", "1,4", "--json", "--max-memory", "64MiB")
    assert result.exit_code == 0, result.output
    import orjson

    doc = orjson.loads(result.output)
    rows = doc["estimates"]
    assert [r["batch_size"] for r in rows] == [1, 4]
    assert rows[0]["input_mb"] == round(1 * 3 * 64 * 64 * 4 / 2**20, 2)
    assert rows[1]["training_peak_mb"] > rows[0]["training_peak_mb"]
    found = doc["largest_batch_size"]
    assert doc["largest_batch_estimate"]["training_peak_bytes"] <= 64 * 2**20
    above = run("estimate", tiny_config, "-b", str(found + 1), "--json")
    assert orjson.loads(above.output)["estimates"][0]["training_peak_bytes"] > 64 * 2**20


def test_estimate_table(tiny_config: Path) -> None:
    result = run("estimate", tiny_config, "-b", "2", "--max-memory", "1KiB")
    assert result.exit_code == 0, result.output
    assert "Estimated memory in MB (adamw, float32)" in result.output
    assert "Not even batch size 1 fits in 1KiB" in result.output


def test_estimate_defaults_from_config(tiny_config: Path) -> None:
    tiny_config.write_text(
        tiny_config.read_text().replace(
            "name: tiny\ndataloader", "name: tiny\n  optimizer: sgd\n  use_amp: true\ndataloader"
        )
    )
    result = run("estimate", tiny_config, "--json")
    row = load_json(result.output)["estimates"][0]
    assert row["batch_size"] == 4  # dataloader.batch_size
    assert row["optimizer"] == "sgd" and row["amp"] is True and row["amp_dtype"] == "bfloat16"


def load_json(text: str) -> dict[str, object]:
    import orjson

    data: dict[str, object] = orjson.loads(text)
    return data


def test_summary_has_compute_and_memory_estimate(seed_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("summarize", seed_config, "-o", out, "-q", "--optimizer", "sgd")
    assert result.exit_code == 0, result.output
    summary = load(out / "metadata" / "model_summary.json")
    compute = summary["compute"]
    assert compute["macs"] * 2 == compute["flops"] and compute["uncounted"] == []
    mem = summary["memory_estimate"]
    assert mem["batch_size"] == 8  # the config's dataloader.batch_size
    assert mem["optimizer"] == "sgd"
    assert mem["parameters_mb"] == round(485_340 * 4 / 2**20, 2)  # the seed's 485,340 params
    assert mem["optimizer_state_mb"] == mem["gradients_mb"] == mem["parameters_mb"]
    root = summary["layers"][0]
    assert root["name"] == "" and root["flops"] == compute["flops"]
    convs = [x for x in summary["layers"] if x["type"] == "Conv2d"]
    assert sum(x["flops"] for x in convs) == compute["flops"]  # every FLOP is in a conv
    # autograd saves tensors only inside leaf modules here (conv, batch norm and SiLU inputs;
    # the root's reshapes save nothing), each storage charged once
    leaves = [x for x in summary["layers"] if x["type"] in ("Conv2d", "BatchNorm2d", "SiLU")]
    assert root["activation_bytes"] == sum(x["activation_bytes"] for x in leaves)


def test_summary_batch_size_option_overrides_config(seed_config: Path, tmp_path: Path) -> None:
    result = run("summarize", seed_config, "-o", tmp_path / "r", "--json", "-b", "3")
    assert load_json(result.output)["memory_estimate"]["batch_size"] == 3  # type: ignore[index]


def test_estimate_factory_needs_an_input() -> None:
    result = run("estimate", "tests.memory_nets:mlp", "-b", "2")
    assert result.exit_code == 2
    assert result.output.strip() == (
        "gai-meta: error: tests.memory_nets:mlp: no input is known for this model (or it cannot "
        "run); pass --input-shape 1,3,640,640 or --input NAME=D0,D1,...[:DTYPE]"
    )
    ok = run("estimate", "tests.memory_nets:mlp", "-b", "2", "--input-shape", "1,1024", "--json")
    assert ok.exit_code == 0, ok.output
    row = load_json(ok.output)["estimates"][0]  # type: ignore[index]
    # 3 x Linear(1024, 1024) + Linear(1024, 10), float32
    params = (3 * (1024 * 1024 + 1024) + 1024 * 10 + 10) * 4
    assert row["parameters_mb"] == round(params / 2**20, 2)  # 12.05
    assert row["input_mb"] == round(2 * 1024 * 4 / 2**20, 2)


def test_summary_view_shows_estimates(seed_config: Path, tmp_path: Path) -> None:
    result = run("summarize", seed_config, "-o", tmp_path / "v", "--depth", "1", "-b", "2")
    assert result.exit_code == 0, result.output
    summary = load(tmp_path / "v" / "metadata" / "model_summary.json")
    flops = summary["compute"]["flops"] / 1e9
    mem = summary["memory_estimate"]
    assert f"Forward FLOPs:            {flops:,.2f} GFLOPs" in result.output
    assert (
        f"Memory, batch 2:          train {mem['training_peak_mb']:,.2f} MB, "
        f"infer {mem['inference_peak_mb']:,.2f} MB (adamw, float32)"
    ) in result.output


def test_option_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gai_meta.options, gai_meta.estimate_report, gai_meta.cli.estimate; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
