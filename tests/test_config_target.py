"""A config's _target_ may build a model; it may not run arbitrary code without trust."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run

HOSTILE = {
    "os.system": 'model: {_target_: "os:system", command: "touch PWNED"}\n',
    "builtins.exec": "model: {_target_: \"builtins:exec\", source: \"open('PWNED', 'w')\"}\n",
    "subprocess": 'model: {_target_: "subprocess:run", args: ["touch", "PWNED"]}\n',
    "torch.load": 'model: {_target_: "torch:load", f: "evil.pt", weights_only: false}\n',
    "torch.jit.load": 'model: {_target_: "torch.jit:load", f: "evil.pt"}\n',
    "remote code": 'model: {_target_: "transformers:AutoModel.from_pretrained", '
    'pretrained_model_name_or_path: ".", trust_remote_code: true}\n',
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_targets_refused_without_trust(case: str, tmp_path: Path) -> None:
    cfg = tmp_path / "hostile.yaml"
    cfg.write_text(HOSTILE[case])
    for command in ("summarize", "params"):
        result = run(command, cfg)
        assert result.exit_code == 2, result.output
        assert "--trust-checkpoint" in result.stderr and "hostile.yaml" in result.stderr
    assert not (tmp_path / "PWNED").exists()


def test_model_factory_from_an_installed_package_is_allowed(tmp_path: Path) -> None:
    cfg = tmp_path / "linear.yaml"
    cfg.write_text('model: {_target_: "torch.nn:Linear", in_features: 4, out_features: 3}\n')
    result = run("params", cfg, "--format", "csv")
    assert result.exit_code == 0, result.output
    # 4*3 weights + 3 biases
    assert result.stdout.splitlines()[1].split(",")[3] == "15"
