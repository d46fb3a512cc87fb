"""Model sources: factories, every checkpoint format (built here from a model), trust, prefixes.

The model is tests.zoo.Net: conv 3*4*3*3 + 4 = 112, BatchNorm 2*4 = 8, fc 4*2 + 2 = 10
-> 130 parameters; buffers running_mean 4 + running_var 4 + num_batches_tracked 1 = 9.
With an 8x8 input: conv 3x3 -> 6x6, pooled, fc -> [1, 2].
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
import torch
from safetensors.torch import save_file

from tests import zoo
from tests.helpers import load, run

NET_PARAMS = 130
NET_BUFFERS = 9
NET_BYTES = 130 * 4


def _summary(*args: Any) -> dict[str, Any]:
    result = run("summarize", *args, "--json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def net() -> zoo.Net:
    torch.manual_seed(0)
    return zoo.Net()


def test_factory_source_with_input(tmp_path: Path) -> None:
    s = _summary("tests.zoo:net", "--input-shape", "1,3,8,8", "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS and s["total_buffers"] == NET_BUFFERS
    assert s["output_shapes"] == [[1, 2]]
    assert s["inputs"] == [{"name": None, "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert s["input_shape"] == [1, 3, 8, 8]
    assert s["source"] == {"path": "tests.zoo:net", "kind": "factory"}
    assert [(c["name"], c["output_shapes"]) for c in s["layers"]] == [
        ("", [[1, 2]]),
        ("conv", [[1, 4, 6, 6]]),
        ("bn", [[1, 4, 6, 6]]),
        ("fc", [[1, 2]]),
    ]
    assert (tmp_path / "metadata" / "model_parameters.json").exists()


def test_factory_without_input_gives_counts_and_a_note(tmp_path: Path) -> None:
    s = _summary("tests.zoo:net", "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS
    assert s["output_shapes"] is None and s["inputs"] is None
    assert any("--input" in n and "--input-shape" in n for n in s["notes"])


def test_factory_from_cwd_module(tmp_path: Path) -> None:
    (tmp_path / "mynets_cwd.py").write_text(
        "import torch\ndef make(width=3):\n    return torch.nn.Linear(width, 2)\n"
    )
    s = _summary("mynets_cwd:make", "--input-shape", "5,3", "-o", tmp_path)
    assert s["total_parameters"] == 3 * 2 + 2 and s["output_shapes"] == [[5, 2]]


def test_yaml_target_passes_kwargs(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {_target_: 'tests.zoo:net', classes: 5}\nexperiment: {name: t, learning_rate: 0.01}\n"
    )
    s = _summary(cfg, "--input-shape", "1,3,8,8", "-o", tmp_path)
    # fc 4*5 + 5 = 25 instead of 10: 130 - 10 + 25 = 145
    assert s["total_parameters"] == 145 and s["output_shapes"] == [[1, 5]]
    assert s["learning_rate"] == 0.01 and s["source"]["kind"] == "factory-config"
    assert (tmp_path / "metadata" / "experiment_config.json").exists()


def test_meta_device_factory_and_device_never_changes_counts(tmp_path: Path) -> None:
    meta = _summary("tests.zoo:net", "--input-shape", "1,3,8,8", "--device", "meta", "-o", tmp_path)
    cpu = _summary("tests.zoo:net", "--input-shape", "1,3,8,8", "--device", "cpu", "-o", tmp_path)
    assert meta["probe_device"] == "meta" and cpu["probe_device"] == "cpu"
    for key in ("total_parameters", "parameter_bytes", "total_buffers", "output_shapes"):
        assert meta[key] == cpu[key]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_same_counts(tmp_path: Path) -> None:  # pragma: no cover - no GPU in CI
    s = _summary("tests.zoo:net", "--input-shape", "1,3,8,8", "--device", "cuda", "-o", tmp_path)
    assert s["probe_device"].startswith("cuda") and s["total_parameters"] == NET_PARAMS


# ----------------------------------------------------------------------------- state dicts


def test_plain_state_dict_without_config_is_accounted(tmp_path: Path, net: zoo.Net) -> None:
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    s = _summary(path, "-o", tmp_path)
    assert s["model_architecture"] == "StateDict" and s["source"]["kind"] == "state-dict"
    assert s["total_parameters"] == NET_PARAMS and s["parameter_bytes"] == NET_BYTES
    # buffers by name: running_mean 4 + running_var 4 + num_batches_tracked 1
    assert s["total_buffers"] == NET_BUFFERS and s["buffer_bytes"] == 4 * 4 + 4 * 4 + 8
    assert s["output_shapes"] is None and s["layers"] == []
    assert any("--config" in n and "factory" in n for n in s["notes"])
    params = load(tmp_path / "metadata" / "model_parameters.json")
    assert {k: v["total_params"] for k, v in params["modules"].items()} == {
        "conv": 112,
        "bn": 8,
        "fc": 10,
    }
    assert sorted(b["name"] for b in params["buffers"]) == [
        "bn.num_batches_tracked",
        "bn.running_mean",
        "bn.running_var",
    ]


@pytest.mark.parametrize("key", ["model_state_dict", "state_dict", "model", "ema"])
def test_state_dict_under_common_keys_with_config(tmp_path: Path, net: zoo.Net, key: str) -> None:
    path = tmp_path / "c.pt"
    torch.save({key: net.state_dict(), "epoch": 7, "optimizer": {}}, path)
    s = _summary(path, "--config", "tests.zoo:net", "--input-shape", "1,3,8,8", "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS and s["output_shapes"] == [[1, 2]]
    assert s["source"]["checkpoint"]["state_dict_key"] == key
    assert s["source"]["checkpoint"]["epoch"] == 7


def test_weights_really_loaded_on_cpu(tmp_path: Path, net: zoo.Net) -> None:
    from gai_meta.sources import LoadOptions, load_source

    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    loaded = load_source(path, LoadOptions(config="tests.zoo:net"))
    model = loaded.build("cpu")
    assert torch.equal(model.state_dict()["fc.weight"], net.fc.weight)
    assert all(p.is_meta for p in loaded.build("meta").parameters())


def _lightning(tmp_path: Path, net: zoo.Net) -> Path:
    path = tmp_path / "last.ckpt"
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["loss_fn.weight"] = torch.ones(2)  # another attribute of the LightningModule
    torch.save(
        {
            "state_dict": state,
            "pytorch-lightning_version": "2.2.0",
            "epoch": 4,
            "global_step": 120,
            "hyper_parameters": {"lr": 0.01, "layers": [1, 2]},
            "optimizer_states": [],
            "loops": {},
        },
        path,
    )
    return path


def test_lightning_checkpoint_prefix_resolved_and_metadata(tmp_path: Path, net: zoo.Net) -> None:
    path = _lightning(tmp_path, net)
    s = _summary(path, "-c", "tests.zoo:net", "--input", "1,3,8,8", "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS and s["output_shapes"] == [[1, 2]]
    ck = s["source"]["checkpoint"]
    assert ck["format"] == "lightning" and ck["key_prefix"] == "model."
    assert ck["lightning"]["version"] == "2.2.0"
    assert ck["lightning"]["global_step"] == 120 and ck["epoch"] == 4
    assert ck["lightning"]["hyper_parameters"] == {"lr": 0.01, "layers": [1, 2]}
    assert any("loss_fn.weight" in n for n in s["notes"])


def test_lightning_without_config_accounts_per_prefix(tmp_path: Path, net: zoo.Net) -> None:
    path = _lightning(tmp_path, net)
    result = run("params", path, "-g", "depth", "--depth", "1", "-f", "json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    # model.* holds the net (130); loss_fn.weight is 2 more
    assert {g["name"]: g["total_params"] for g in data["groups"]} == {"model": 130, "loss_fn": 2}


def test_state_dict_mismatch_against_factory(tmp_path: Path, net: zoo.Net) -> None:
    path = tmp_path / "sd.pt"
    torch.save(net.state_dict(), path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {_target_: 'tests.zoo:net', classes: 3}\n")
    result = run("summarize", path, "--config", cfg, "-o", tmp_path)
    assert result.exit_code == 2
    assert "fc.weight checkpoint [2, 4] vs model [3, 4]" in result.stderr
    assert not (tmp_path / "metadata").exists()


def test_tied_weights_in_state_dict_counted_once(tmp_path: Path) -> None:
    model = nn_tied()
    path = tmp_path / "tied.pt"
    torch.save(model.state_dict(), path)  # torch.save keeps the shared storage
    s = _summary(path, "-o", tmp_path)
    # embedding 10*4 = 40 shared with the head's weight; head bias 10 -> 50
    assert s["total_parameters"] == 50


def nn_tied() -> torch.nn.Module:
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10)
    head.weight = emb.weight
    return torch.nn.ModuleDict({"emb": emb, "head": head})


# ----------------------------------------------------------------------------- safetensors


def test_safetensors_header_only_and_with_config(tmp_path: Path, net: zoo.Net) -> None:
    path = tmp_path / "w.bin"  # detected by content, not by extension
    save_file(net.state_dict(), str(path), metadata={"format": "pt"})
    s = _summary(path, "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS and s["total_buffers"] == NET_BUFFERS
    assert s["source"]["checkpoint"]["format"] == "safetensors"
    assert s["source"]["checkpoint"]["metadata"] == {"format": "pt"}
    assert s["output_shapes"] is None
    s = _summary(path, "-c", "tests.zoo:net", "--input-shape", "1,3,8,8", "-o", tmp_path)
    assert s["output_shapes"] == [[1, 2]] and s["probe_device"] == "cpu"

    from gai_meta.sources import LoadOptions, load_source

    model = load_source(path, LoadOptions(config="tests.zoo:net")).build("cpu")
    assert torch.equal(model.state_dict()["conv.weight"], net.conv.weight)


def test_safetensors_bf16_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "h.safetensors"
    save_file(
        {
            "a.weight": torch.zeros(3, 5, dtype=torch.bfloat16),
            "a.ids": torch.zeros(4, dtype=torch.int64),
        },
        str(path),
    )
    result = run("params", path, "-g", "dtype", "-f", "json")
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    # the int64 tensor is a buffer (not floating point): 15 bf16 parameters, 30 bytes
    assert data["groups"] == [
        {
            "name": "bfloat16",
            "count": 1,
            "tensors": 1,
            "total_params": 15,
            "trainable_params": 15,
            "bytes": 30,
        }
    ]


# ----------------------------------------------------------------------------- trusted formats


def _pickled(tmp_path: Path, net: zoo.Net) -> Path:
    torch.save(net, tmp_path / "full.pt")
    return tmp_path / "full.pt"


def _script(tmp_path: Path, net: zoo.Net) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated
        torch.jit.save(torch.jit.script(net), str(tmp_path / "scripted.pt"))
    return tmp_path / "scripted.pt"


def _exported(tmp_path: Path, net: zoo.Net) -> Path:
    ep = torch.export.export(net.eval(), (torch.zeros(1, 3, 8, 8),))
    torch.export.save(ep, str(tmp_path / "net.pt2"))
    return tmp_path / "net.pt2"


@pytest.mark.parametrize("make", [_pickled, _script, _exported])
def test_code_formats_refused_without_trust(tmp_path: Path, net: zoo.Net, make: Any) -> None:
    path = make(tmp_path, net)
    for cmd in (["summarize", path, "-o", tmp_path], ["params", path]):
        result = run(*cmd)
        assert result.exit_code == 2
        assert "--trust-checkpoint" in result.stderr and path.name in result.stderr
        assert "\n" not in result.stderr.strip()
    assert not (tmp_path / "metadata").exists()


def test_pickled_module_trusted(tmp_path: Path, net: zoo.Net) -> None:
    path = _pickled(tmp_path, net)
    for device in ("cpu", "meta"):
        s = _summary(
            path,
            "--trust-checkpoint",
            "--input-shape",
            "1,3,8,8",
            "--device",
            device,
            "-o",
            tmp_path,
        )
        assert s["total_parameters"] == NET_PARAMS and s["output_shapes"] == [[1, 2]]
        assert s["probe_device"] == device and s["model_architecture"] == "Net"
        assert [c["name"] for c in s["layers"]] == ["", "conv", "bn", "fc"]
    assert not net.conv.weight.is_meta  # the meta copy left the loaded module alone


def test_torchscript_trusted(tmp_path: Path, net: zoo.Net) -> None:
    path = _script(tmp_path, net)
    s = _summary(path, "--trust-checkpoint", "--input-shape", "1,3,8,8", "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS and s["total_buffers"] == NET_BUFFERS
    assert s["output_shapes"] == [[1, 2]] and s["model_architecture"] == "Net"
    result = run("params", path, "--trust-checkpoint", "-f", "json")
    groups = {g["name"]: g["total_params"] for g in orjson.loads(result.stdout)["groups"]}
    assert groups == {"Conv2d": 112, "BatchNorm2d": 8, "Linear": 10}


def test_exported_program_trusted_keeps_layer_shapes(tmp_path: Path, net: zoo.Net) -> None:
    path = _exported(tmp_path, net)
    s = _summary(path, "--trust-checkpoint", "-o", tmp_path)
    assert s["total_parameters"] == NET_PARAMS
    assert s["inputs"] == [{"name": None, "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert s["output_shapes"] == [[1, 2]]
    shapes = {c["name"]: c["output_shapes"] for c in s["layers"]}
    assert shapes["conv"] == [[1, 4, 6, 6]] and shapes["fc"] == [[1, 2]]
    assert {d["name"]: d["type"] for d in s["layer_details"]} == {
        "conv": "Conv2d",
        "bn": "BatchNorm2d",
        "fc": "Linear",
    }


def test_summaries_of_every_source_kind_match_the_schema(tmp_path: Path, net: zoo.Net) -> None:
    import jsonschema

    from gai_meta.schema import load_schema

    torch.save(net.state_dict(), tmp_path / "sd.pt")
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    docs = [
        _summary("tests.zoo:net", "--input-shape", "1,3,8,8", "-o", tmp_path),
        _summary("tests.zoo:kw_model", "--input", "tokens=1,3:int64", "-o", tmp_path),
        _summary(tmp_path / "sd.pt", "-o", tmp_path),
        _summary(tmp_path / "w.safetensors", "-c", "tests.zoo:net", "-o", tmp_path),
        _summary(_exported(tmp_path, net), "--trust-checkpoint", "-o", tmp_path),
    ]
    schema = load_schema("model_summary")
    for doc in docs:
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    assert docs[-1]["probe_device"] == "exported-graph"


def test_gai_weights_as_safetensors_and_lightning_with_yaml_config(
    tmp_path: Path, seed_config: Path
) -> None:
    import yaml

    from gai_meta.models import build_model, model_config_from_mapping
    from tests.conftest import SEED_CONFIG

    torch.manual_seed(0)
    model = build_model(model_config_from_mapping(yaml.safe_load(SEED_CONFIG)["model"]))
    save_file(model.state_dict(), str(tmp_path / "gai.safetensors"))
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "pytorch-lightning_version": "2.0.0",
            "hyper_parameters": {},
            "global_step": 1,
        },
        tmp_path / "gai.ckpt",
    )
    for name in ("gai.safetensors", "gai.ckpt"):
        s = _summary(tmp_path / name, "--config", seed_config, "-o", tmp_path / f"out-{name}")
        assert s["total_parameters"] == 485_340  # the seed example (tests/test_summarize.py)
        # the config's input size 320: stride-2 stages 160 and 80
        assert s["output_shapes"] == [[1, 2, 160, 160, 15], [1, 2, 80, 80, 15]]
        assert s["model_architecture"] == "GAIYoloV12"


def test_auto_falls_back_to_cpu_only_when_the_weights_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    from gai_meta import summary
    from gai_meta.errors import ForwardError
    from gai_meta.inputs import InputSpec
    from gai_meta.sources import load_source

    monkeypatch.setattr(summary, "AUTO_CPU_MAX_BYTES", 0)  # as if the model were large: meta first
    spec = [InputSpec(None, (2, 4))]
    intro = summary.introspect(load_source("tests.zoo:data_dependent"), inputs=spec)
    assert intro.device == "cpu" and intro.probe is not None
    assert intro.probe.output_shapes == [[2, 4]]
    assert any("meta device could not run" in n for n in intro.notes)
    # weights 4*4 + 4 = 20 floats = 80 bytes; with 100 bytes free the fallback is refused
    monkeypatch.setattr(summary, "_free_memory", lambda: 100)
    with pytest.raises(ForwardError, match=r"too big for a cpu fallback.*--device cpu"):
        summary.introspect(load_source("tests.zoo:data_dependent"), inputs=spec)
    with pytest.raises(ForwardError, match="top-level model"):
        summary.introspect(load_source("tests.zoo:data_dependent"), inputs=spec, device="meta")
