"""[tool.gai-meta] in pyproject.toml: discovery, several models, relative paths, invalid values."""

from __future__ import annotations

from pathlib import Path

import pytest

from gai_meta import summary
from gai_meta.budgets import Budgets
from gai_meta.errors import ConfigError, UsageError
from gai_meta.project import _DEVICES, Overrides, find_pyproject, load_project, resolve_specs
from tests.conftest import SEED_CONFIG, TINY_CONFIG
from tests.helpers import gai_params, load, run

TINY_PARAMS = gai_params(8, 2, 16, 3, [2, 2])
SEED_PARAMS = gai_params(32, 2, 128, 10, [2, 2])  # 485,340 (the reference's published example)


def _project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / "tiny.yaml").write_text(TINY_CONFIG)
    (tmp_path / "configs" / "seed.yaml").write_text(SEED_CONFIG)
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "demo"\n\n' + body)
    return path


def test_devices_mirror_summary() -> None:
    assert summary.DEVICES == _DEVICES


def test_no_arguments_in_a_project_root(tmp_path: Path) -> None:
    _project(
        tmp_path,
        '[tool.gai-meta]\nsource = "configs/tiny.yaml"\nbaseline = "locks/arch.json"\n',
    )
    (tmp_path / "locks").mkdir()
    result = run("lock")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"tiny: wrote locks/arch.json ({TINY_PARAMS:,} parameters)\n"
    assert run("check").exit_code == 0


def test_paths_are_relative_to_the_pyproject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path, '[tool.gai-meta]\nsource = "configs/tiny.yaml"\nmax_parameters = 100000\n')
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert run("lock").exit_code == 0
    assert (tmp_path / "architecture.lock.json").exists()  # next to pyproject.toml, not in cwd
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "../../architecture.lock.json" in result.stdout


def test_project_budgets_and_cli_override(tmp_path: Path) -> None:
    _project(
        tmp_path,
        '[tool.gai-meta]\nsource = "configs/tiny.yaml"\nmax_parameters = 10000\n'
        "output_shapes = [[1, 2, 32, 32, 8], [1, 2, 16, 16, 8]]\n",
    )
    assert run("lock").exit_code == 0
    result = run("check")
    assert result.exit_code == 1
    assert result.stdout == (
        f"tiny: budget max_parameters broken: limit 10,000, value {TINY_PARAMS:,} "
        f"({TINY_PARAMS - 10_000:,} over)\n"
    )
    assert run("check", "--max-parameters", "20000").exit_code == 0


def test_expected_output_shapes(tmp_path: Path) -> None:
    _project(
        tmp_path,
        '[tool.gai-meta]\nsource = "configs/tiny.yaml"\noutput_shapes = "wrong"\n',
    )
    err = run("check").stderr.strip()
    assert "tool.gai-meta.output_shapes: expected a list of shapes" in err
    _project(
        tmp_path,
        '[tool.gai-meta]\nsource = "configs/tiny.yaml"\noutput_shapes = [[1, 2, 8, 8, 8]]\n',
    )
    assert run("lock").exit_code == 0
    result = run("check")
    assert result.exit_code == 1
    assert result.stdout == (
        "tiny: budget output_shapes broken: expected [[1, 2, 8, 8, 8]], "
        "found [[1, 2, 32, 32, 8], [1, 2, 16, 16, 8]]\n"
    )


MODELS = """\
[tool.gai-meta]
device = "cpu"

[[tool.gai-meta.models]]
name = "tiny"
source = "configs/tiny.yaml"

[[tool.gai-meta.models]]
name = "seed"
source = "configs/seed.yaml"
baseline = "seed.lock.json"
max_parameters = {limit}
"""


def test_several_models_in_one_run(tmp_path: Path) -> None:
    _project(tmp_path, MODELS.format(limit=500_000))
    result = run("lock")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"tiny: wrote architecture.tiny.lock.json ({TINY_PARAMS:,} parameters)\n"
        f"seed: wrote seed.lock.json ({SEED_PARAMS:,} parameters)\n"
    )
    assert load(tmp_path / "seed.lock.json")["totals"]["parameters"] == 485_340
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok, matches") == 2

    _project(tmp_path, MODELS.format(limit=400_000))
    result = run("check")
    assert result.exit_code == 1
    assert result.stdout == (
        f"tiny: ok, matches architecture.tiny.lock.json ({TINY_PARAMS:,} parameters; cached)\n"
        "seed: budget max_parameters broken: limit 400,000, value 485,340 (85,340 over)\n"
    )
    assert result.stderr == "gai-meta: 1 of 2 models failed: seed (budget)\n"
    only = run("check", "--model", "tiny")
    assert only.exit_code == 0 and "seed" not in only.stdout


def test_one_model_error_does_not_hide_the_others(tmp_path: Path) -> None:
    _project(tmp_path, MODELS.format(limit=500_000))
    assert run("lock", "--model", "tiny").exit_code == 0
    result = run("check")  # seed has no baseline yet
    assert result.exit_code == 2
    assert result.stdout.startswith("tiny: ok, matches")
    lines = result.stderr.splitlines()
    assert lines[0].startswith("gai-meta: error: [seed] ") and "gai-meta lock" in lines[0]
    assert lines[1] == "gai-meta: 1 of 2 models failed: seed (error)"


def test_model_selection_errors(tmp_path: Path) -> None:
    _project(tmp_path, MODELS.format(limit=500_000))
    err = run("check", "--model", "nope").stderr
    assert "--model nope: no such model; the project has tiny, seed" in err
    err = run("check", "--baseline", "x.json").stderr
    assert "--baseline applies to one model; pick it with --model NAME" in err
    err = run("check", "configs/tiny.yaml", "--model", "tiny").stderr
    assert "pass either SOURCE or --model NAME, not both" in err


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[tool.gai-meta]\nsource = 3\n",
            "tool.gai-meta.source: expected a non-empty string, found 3 (an integer)",
        ),
        (
            '[tool.gai-meta]\nsourse = "a.yaml"\n',
            "tool.gai-meta.sourse: unknown key; known keys are name, source",
        ),
        (
            '[tool.gai-meta]\nmax_parameters = "5e5"\n',
            "tool.gai-meta.max_parameters: expected a whole number above 0, found '5e5' (a string)",
        ),
        (
            "[tool.gai-meta]\nmax_parameters = true\n",
            "tool.gai-meta.max_parameters: expected a whole number above 0, found True (a boolean)",
        ),
        (
            "[tool.gai-meta]\nmax_size_mb = -1\n",
            "tool.gai-meta.max_size_mb: expected a number above 0, found -1",
        ),
        (
            "[tool.gai-meta]\nmax_flops = nan\n",
            "tool.gai-meta.max_flops: expected a number above 0, found nan",
        ),
        (
            "[tool.gai-meta]\ninput_shape = [1, 0, 3]\n",
            "tool.gai-meta.input_shape: expected a non-empty list of whole numbers above 0",
        ),
        (
            '[tool.gai-meta]\ninput_shape = "1,a"\n',
            "tool.gai-meta.input_shape: expected a list of whole numbers",
        ),
        (
            '[tool.gai-meta]\ndevice = "tpu"\n',
            "tool.gai-meta.device: expected one of auto, meta, cpu, cuda (or cuda:N), found 'tpu'",
        ),
        (
            '[tool.gai-meta]\ntrust_checkpoint = "yes"\n',
            "tool.gai-meta.trust_checkpoint: expected true or false",
        ),
        ('[tool.gai-meta]\ninputs = "x=1,2"\n', "tool.gai-meta.inputs: expected a list of strings"),
        ('[tool.gai-meta]\nname = "a b"\n', "tool.gai-meta.name: expected a name of letters"),
        (
            "[tool.gai-meta]\nmodels = 3\n",
            "tool.gai-meta.models: expected an array of tables, found 3",
        ),
        (
            '[tool.gai-meta]\nbaseline = "a.json"\n[[tool.gai-meta.models]]\nname = "a"\nsource = "s"\n',
            "tool.gai-meta.baseline: with [[tool.gai-meta.models]] each model has its own baseline",
        ),
        (
            '[[tool.gai-meta.models]]\nname = "a"\nsource = "s"\n[[tool.gai-meta.models]]\nname = "b"\nsource = "s"\nmax_parameters = 1.5\n',
            "tool.gai-meta.models[1].max_parameters: expected a whole number above 0, found 1.5 (a number)",
        ),
        ('[[tool.gai-meta.models]]\nsource = "s"\n', "tool.gai-meta.models[0].name: required"),
        ('[[tool.gai-meta.models]]\nname = "a"\n', "tool.gai-meta.models[0].source: required"),
        (
            '[[tool.gai-meta.models]]\nname = "a"\nsource = "s"\n[[tool.gai-meta.models]]\nname = "a"\nsource = "t"\n',
            "tool.gai-meta.models[1].name: 'a' is already the name of models[0]",
        ),
        (
            '[[tool.gai-meta.models]]\nname = "a"\nsource = "s"\nbaseline = "x.json"\n[[tool.gai-meta.models]]\nname = "b"\nsource = "t"\nbaseline = "x.json"\n',
            "tool.gai-meta.models[1].baseline: x.json is already the baseline of models[0]",
        ),
        (
            '[[tool.gai-meta.models]]\nname = "a"\nsource = "s"\ncolour = 1\n',
            "tool.gai-meta.models[0].colour: unknown key",
        ),
        ("[tool.gai-meta]\nsource = \n", "not valid TOML"),
        ("[tool]\ngai-meta = 3\n", "tool.gai-meta: expected a table, found 3"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, body: str, expected: str) -> None:
    path = _project(tmp_path, body)
    for command in ("check", "lock"):
        result = run(command)
        assert result.exit_code == 2, result.output
        err = result.stderr.strip()
        assert "\n" not in err and "Traceback" not in result.output
        assert err.startswith(f"gai-meta: error: {path}: "), err
        assert expected in err, err


def test_source_on_the_command_line_keeps_project_defaults(tmp_path: Path) -> None:
    _project(tmp_path, '[tool.gai-meta]\nsource = "configs/seed.yaml"\nmax_parameters = 1000\n')
    project = load_project(tmp_path)
    assert project is not None and project.path == tmp_path / "pyproject.toml"
    [spec] = resolve_specs(project, Overrides(source="configs/tiny.yaml"), cwd=tmp_path)
    assert spec.name == "tiny" and spec.source == str(tmp_path / "configs" / "tiny.yaml")
    assert spec.budgets == Budgets(max_parameters=1000)
    assert spec.baseline == tmp_path / "architecture.lock.json"
    [spec] = resolve_specs(project, Overrides(max_parameters=5, device="meta"), cwd=tmp_path)
    assert spec.budgets.max_parameters == 5 and spec.device == "meta"


def test_factory_sources_are_not_paths(tmp_path: Path) -> None:
    _project(tmp_path, '[tool.gai-meta]\nsource = "mypkg.models:build"\ninput_shape = "1,3,8,8"\n')
    [spec] = resolve_specs(load_project(tmp_path), Overrides(), cwd=tmp_path)
    assert spec.source == "mypkg.models:build" and spec.name == "build"
    assert spec.input_shape == (1, 3, 8, 8)
    assert spec.input_files() == []  # the project's values are in the spec itself


def test_discovery_stops_at_the_repository_root(tmp_path: Path) -> None:
    _project(tmp_path, '[tool.gai-meta]\nsource = "configs/tiny.yaml"\n')
    repo = tmp_path / "other-repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    assert find_pyproject(repo / "sub") is None
    assert find_pyproject(tmp_path / "configs") == tmp_path / "pyproject.toml"
    # a pyproject.toml without [tool.gai-meta] is skipped on the way up
    (tmp_path / "configs" / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_pyproject(tmp_path / "configs") == tmp_path / "pyproject.toml"


def test_resolve_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no model source configured"):
        resolve_specs(None, Overrides(), cwd=tmp_path)
    _project(tmp_path, "[tool.gai-meta]\nmax_parameters = 0\n")
    with pytest.raises(ConfigError, match=r"tool\.gai-meta\.max_parameters"):
        resolve_specs(load_project(tmp_path), Overrides(), cwd=tmp_path)
