"""`gai-meta lock` / `gai-meta check`: exit codes, reports, budgets, --update, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gai_meta.check import count_flops
from gai_meta.errors import UsageError
from gai_meta.summary import load_and_introspect
from tests.conftest import TINY_CONFIG
from tests.helpers import gai_params, load, run

TINY_PARAMS = gai_params(8, 2, 16, 3, [2, 2])


def _lock(*args: str | Path) -> None:
    result = run("lock", *args)
    assert result.exit_code == 0, result.output


def test_lock_then_check(tiny_config: Path, tmp_path: Path) -> None:
    result = run("lock", tiny_config)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"tiny: wrote architecture.lock.json ({TINY_PARAMS:,} parameters)\n"
    assert load(tmp_path / "architecture.lock.json")["totals"]["parameters"] == TINY_PARAMS
    result = run("check", tiny_config)
    assert result.exit_code == 0, result.output
    assert (
        result.stdout == f"tiny: ok, matches architecture.lock.json ({TINY_PARAMS:,} parameters)\n"
    )
    again = run("check", tiny_config)
    assert again.stdout == (
        f"tiny: ok, matches architecture.lock.json ({TINY_PARAMS:,} parameters; cached)\n"
    )
    nocache = run("check", tiny_config, "--no-cache")
    assert nocache.exit_code == 0 and "cached" not in nocache.stdout
    relock = run("lock", tiny_config)
    assert (
        relock.stdout
        == f"tiny: architecture.lock.json is up to date ({TINY_PARAMS:,} parameters)\n"
    )


def test_drift_fails_and_update_accepts(tiny_config: Path, tmp_path: Path) -> None:
    _lock(tiny_config)
    before = (tmp_path / "architecture.lock.json").read_bytes()
    tiny_config.write_text(TINY_CONFIG.replace("hidden_channels: 16", "hidden_channels: 32"))
    result = run("check", tiny_config)
    assert result.exit_code == 1, result.output
    wider = gai_params(8, 2, 32, 3, [2, 2])
    lines = result.stdout.splitlines()
    assert lines[0] == "tiny: architecture differs from architecture.lock.json"
    assert lines[1] == f"  parameters: {TINY_PARAMS:,} -> {wider:,} (+{wider - TINY_PARAMS:,})"
    # the first head conv goes from 16 to 32 output channels (input: the 8-channel first stage)
    assert (
        "    heads.0.block.0 (Conv2d): parameter weight shape [16, 8, 3, 3] -> [32, 8, 3, 3]; "
        "outputs [[1, 16, 32, 32]] -> [[1, 32, 32, 32]]" in lines
    )
    assert "layers added" not in result.stdout and "output shapes" not in result.stdout
    assert lines[-1].startswith("  if this change is intended, run `gai-meta check --update`")
    assert (tmp_path / "architecture.lock.json").read_bytes() == before  # never rewritten
    updated = run("check", tiny_config, "--update")
    assert updated.exit_code == 0, updated.output
    assert (
        updated.stdout.splitlines()[0]
        == f"tiny: updated architecture.lock.json ({wider:,} parameters)"
    )
    assert load(tmp_path / "architecture.lock.json")["totals"]["parameters"] == wider
    assert run("check", tiny_config).exit_code == 0


def test_added_layers_and_output_shapes(tiny_config: Path) -> None:
    _lock(tiny_config)
    tiny_config.write_text(TINY_CONFIG.replace("depth: 2", "depth: 3"))
    result = run("check", tiny_config)
    assert result.exit_code == 1
    # A third stage (32 channels at 8x8) is added; the two heads now read stages 2 and 3.
    assert (
        "  output shapes: [[1, 2, 32, 32, 8], [1, 2, 16, 16, 8]] -> "
        "[[1, 2, 16, 16, 8], [1, 2, 8, 8, 8]]" in result.stdout
    )
    assert "  layers added (" in result.stdout
    assert "    backbone.stages.2 (Sequential)" in result.stdout


def test_budgets_from_the_command_line(tiny_config: Path) -> None:
    _lock(tiny_config)
    result = run("check", tiny_config, "--max-parameters", "1000")
    assert result.exit_code == 1
    over = TINY_PARAMS - 1000
    assert result.stdout == (
        f"tiny: budget max_parameters broken: limit 1,000, value {TINY_PARAMS:,} ({over:,} over)\n"
    )
    assert run("check", tiny_config, "--max-parameters", str(TINY_PARAMS)).exit_code == 0
    # --update never accepts a broken budget
    update = run("check", tiny_config, "--update", "--max-size-mb", "0.001")
    assert update.exit_code == 1 and "budget max_size_mb broken: limit 0.001 MB" in update.stdout


def test_broken_budget_is_not_cached(tiny_config: Path, tmp_path: Path) -> None:
    _lock(tiny_config)
    assert run("check", tiny_config, "--max-parameters", "1000").exit_code == 1
    assert not list((tmp_path / ".gai-meta-cache").rglob("*.json"))
    assert run("check", tiny_config, "--max-parameters", "1000").exit_code == 1


def test_input_shape_is_part_of_the_fingerprint(tiny_config: Path) -> None:
    _lock(tiny_config, "--input-shape", "1,3,32,32")
    assert run("check", tiny_config, "--input-shape", "1,3,32,32").exit_code == 0
    result = run("check", tiny_config)  # the config's 64x64
    assert result.exit_code == 1
    assert "  inputs: input [1, 3, 32, 32] float32 -> input [1, 3, 64, 64] float32" in result.stdout


def test_max_flops_without_estimates_is_a_clear_error(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "gai_meta.estimates", None)  # as if it did not exist
    _lock(tiny_config)
    result = run("check", tiny_config, "--max-flops", "1e9")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "gai-meta: error: max_flops: this gai-meta has no compute estimates (gai_meta.estimates) "
        "to count FLOPs with; upgrade gai-meta or remove max_flops"
    )


def test_max_flops_through_the_estimates_module(
    tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    seen: list[tuple[int, ...]] = []

    def count_compute(model: object, args: tuple[object, ...]) -> object:
        seen.append(tuple(args[0].shape))  # type: ignore[attr-defined]
        return types.SimpleNamespace(flops=5_000)

    monkeypatch.setitem(
        sys.modules, "gai_meta.estimates", types.SimpleNamespace(count_compute=count_compute)
    )
    _lock(tiny_config)
    result = run("check", tiny_config, "--max-flops", "4000")
    assert result.exit_code == 1
    assert result.stdout == "tiny: budget max_flops broken: limit 4,000, value 5,000 (1,000 over)\n"
    assert seen == [(1, 3, 64, 64)]  # counted at the declared input
    assert run("check", tiny_config, "--max-flops", "5000").exit_code == 0


def test_max_flops_with_the_real_estimates(tiny_config: Path) -> None:
    pytest.importorskip("gai_meta.estimates")
    _lock(tiny_config)
    # Convolution FLOPs 2*Cout*Hout*Wout*Cin*k*k at 1x3x64x64 (BN/SiLU/bias are not counted):
    # stage 1 (32x32): 2*8*1024*3*9 + 2*8*1024*8 + 2*8*1024*8*9 = 1,753,088
    # stage 2 (16x16): 2*16*256*8*9 + 2*16*256*16 + 2*16*256*16*9 = 1,900,544
    # head on stage 1: 2*16*1024*8*9 + 2*16*1024*16*9 + 2*16*1024*16 = 7,602,176
    # head on stage 2: 2*16*256*16*9 * 2 + 2*16*256*16 = 2,490,368  -> 13,746,176 in all
    result = run("check", tiny_config, "--max-flops", "13746175")
    assert result.exit_code == 1
    assert result.stdout == (
        "tiny: budget max_flops broken: limit 13,746,175, value 13,746,176 (1 over)\n"
    )
    assert run("check", tiny_config, "--max-flops", "13746176").exit_code == 0


def test_max_flops_needs_an_input(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "gai_meta.estimates", types.SimpleNamespace())
    (tmp_path / "t.yaml").write_text(TINY_CONFIG)
    intro = load_and_introspect(tmp_path / "t.yaml", run_forward=False)
    with pytest.raises(UsageError, match="FLOPs need an input"):
        count_flops(intro)


# -- bad input --------------------------------------------------------------------------------


def _one_error_line(result: object, *needles: str) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert "\n" not in err and err.startswith("gai-meta: error: "), err
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    for needle in needles:
        assert needle in err, err
    return err


def test_missing_baseline(tiny_config: Path) -> None:
    _one_error_line(run("check", tiny_config), "architecture.lock.json", "run `gai-meta lock`")


def test_corrupt_and_newer_baselines(tiny_config: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "architecture.lock.json"
    baseline.write_text("{ broken")
    _one_error_line(run("check", tiny_config), "not valid JSON", "gai-meta lock")
    baseline.write_text(json.dumps({"schema_version": 99}))
    _one_error_line(run("check", tiny_config), "newer gai-meta (schema_version 99")
    # --update replaces an unreadable baseline
    assert run("check", tiny_config, "--update").exit_code == 0
    assert load(baseline)["schema_version"] == 1


def test_no_source_anywhere() -> None:
    err = _one_error_line(run("check"), "no model source configured", "pass SOURCE")
    assert "[tool.gai-meta]" in err
    _one_error_line(run("lock"), "no model source configured")


def test_bad_source_and_options(tmp_path: Path, tiny_config: Path) -> None:
    _one_error_line(run("lock", tmp_path / "nope.yaml"), "no such file")
    _one_error_line(run("check", tiny_config, "--input-shape", "1,x"), "part 2")
    _lock(tiny_config)
    _one_error_line(run("check", tiny_config, "--device", "tpu"), "--device 'tpu'")
    result = run("check", tiny_config, "--max-parameters", "0")
    assert result.exit_code == 2  # typer's own range check


def test_inputs_from_project_and_command_line(tiny_config: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.gai-meta]\nsource = "{tiny_config.name}"\ninputs = ["2,3,32,32"]\n'
    )
    _lock()
    locked = load(tmp_path / "architecture.lock.json")
    # stride-2 stages: 32 -> 16 -> 8; 2 anchors, 3 classes + 5
    assert locked["output_shapes"] == [[2, 2, 16, 16, 8], [2, 2, 8, 8, 8]]
    assert run("check").exit_code == 0
    # the command line's --input-shape replaces the project's inputs: a different input drifts
    assert run("check", "--input-shape", "1,3,32,32", "--no-cache").exit_code == 1
    assert run("check", "--input", "2,3,32,32", "--no-cache").exit_code == 0
