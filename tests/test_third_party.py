"""Real third-party models (transformers, random init, no downloads) and custom edge cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import torch
from safetensors.torch import save_model

from tests import zoo
from tests.conftest import REPO
from tests.helpers import load, run

pytest.importorskip("transformers")

# GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, n_positions=128), n_inner = 4*64:
#   wte 1000*64 = 64,000; wpe 128*64 = 8,192; ln_f 2*64 = 128
#   per block: ln_1 128 + c_attn (64*192 + 192) 12,480 + attn c_proj (64*64 + 64) 4,160
#              + ln_2 128 + c_fc (64*256 + 256) 16,640 + mlp c_proj (256*64 + 64) 16,448 = 49,984
#   2 blocks = 99,968; lm_head.weight is wte.weight (tied): 0 more
#   total 64,000 + 8,192 + 99,968 + 128 = 172,288 (torchinfo 1.8.0 adds the tied 64,000 again:
#   236,288)
GPT2_PARAMS = 172_288

# BertConfig(hidden 32, 2 layers, intermediate 64, vocab 100, 64 positions, 2 token types):
#   embeddings: word 100*32 = 3,200 + position 64*32 = 2,048 + token type 2*32 = 64 + LN 64 = 5,376
#   per layer: q/k/v 3*(32*32 + 32) = 3,168 + attn out 1,056 + LN 64 + intermediate 32*64 + 64 =
#              2,112 + output 64*32 + 32 = 2,080 + LN 64 = 8,544; 2 layers = 17,088
#   pooler 32*32 + 32 = 1,056 -> 5,376 + 17,088 + 1,056 = 23,520
BERT_PARAMS = 23_520


def _summary(*args: Any) -> dict[str, Any]:
    result = run("summarize", *args, "--json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)  # type: ignore[no-any-return]


def test_gpt2_tied_embeddings_counted_once(tmp_path: Path) -> None:
    s = _summary("tests.zoo:gpt2", "--input", "input_ids=1,16:int64", "-o", tmp_path)
    assert s["total_parameters"] == GPT2_PARAMS
    assert s["parameter_bytes"] == GPT2_PARAMS * 4
    assert s["model_architecture"] == "GPT2LMHeadModel"
    assert s["inputs"] == [{"name": "input_ids", "shape": [1, 16], "dtype": "int64"}]
    assert s["input_shape"] == [1, 16]
    # logits [1, 16, vocab]; the cache keeps keys and values per layer: [1, heads, 16, 64 / 2]
    assert s["output_shapes"] == [[1, 16, 1000]] + [[1, 2, 16, 32]] * 4
    assert s["output_structure"]["__class__"] == "CausalLMOutputWithCrossAttentions"
    assert s["output_structure"]["logits"] == {"shape": [1, 16, 1000], "dtype": "float32"}
    params = load(tmp_path / "metadata" / "model_parameters.json")
    wte = params["modules"]["transformer.wte"]["shape_info"][0]
    assert wte["tied_to"] == ["lm_head.weight"]


def test_gpt2_checkpoints_keep_ties(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.gpt2()
    save_model(model, str(tmp_path / "gpt2.safetensors"))  # keeps one name of the tied pair
    torch.save(model.state_dict(), tmp_path / "gpt2.pt")  # both names, one storage
    for name in ("gpt2.safetensors", "gpt2.pt"):
        bare = _summary(tmp_path / name, "-o", tmp_path)
        assert bare["total_parameters"] == GPT2_PARAMS, name
        built = _summary(
            tmp_path / name,
            "-c",
            "tests.zoo:gpt2",
            "--input",
            "input_ids=2,8:int64",
            "-o",
            tmp_path,
        )
        assert built["total_parameters"] == GPT2_PARAMS, name
        assert built["output_shapes"][0] == [2, 8, 1000]


def test_bert_keyword_inputs_and_model_output(tmp_path: Path) -> None:
    s = _summary(
        "tests.zoo:bert",
        "--input",
        "input_ids=2,10:int64",
        "--input",
        "attention_mask=2,10:int64",
        "-o",
        tmp_path,
    )
    assert s["total_parameters"] == BERT_PARAMS
    # buffers: embeddings.position_ids [1, 64] + embeddings.token_type_ids [1, 64] (int64)
    assert s["total_buffers"] == 128 and s["buffer_bytes"] == 128 * 8
    assert s["input_shape"] is None and len(s["inputs"]) == 2
    # last_hidden_state [2, 10, 32], pooler_output [2, 32]
    assert s["output_shapes"] == [[2, 10, 32], [2, 32]]
    assert set(s["output_structure"]) >= {"__class__", "last_hidden_state", "pooler_output"}
    result = run("params", "tests.zoo:bert", "-g", "depth", "--depth", "2", "-f", "json")
    groups = {g["name"]: g["total_params"] for g in orjson.loads(result.stdout)["groups"]}
    assert groups == {"embeddings.word_embeddings": 3200, "embeddings.position_embeddings": 2048,
                      "embeddings.token_type_embeddings": 64, "embeddings.LayerNorm": 64,
                      "encoder.layer": 17_088, "pooler.dense": 1056}  # fmt: skip


def test_keyword_inputs_dict_outputs_frozen_bf16(tmp_path: Path) -> None:
    s = _summary(
        "tests.zoo:kw_model",
        "--input",
        "tokens=2,5:int64",
        "--input",
        "mask=2,5:bool",
        "-o",
        tmp_path,
    )
    # embed 50*8 = 400 (frozen, float32); proj 8*4 + 4 = 36 (bf16)
    assert s["total_parameters"] == 436
    assert s["trainable_parameters"] == 36 and s["non_trainable_parameters"] == 400
    assert s["parameter_bytes"] == 400 * 4 + 36 * 2
    # buffers: scale 4 bf16 (8 bytes) + counter 1 int64 (8 bytes)
    assert s["total_buffers"] == 5 and s["buffer_bytes"] == 16
    assert s["output_shapes"] == [[2, 5, 4], [2, 4], [2, 5]]
    assert s["output_structure"]["logits"] == {"shape": [2, 5, 4], "dtype": "bfloat16"}
    assert s["output_structure"]["mask"]["dtype"] == "bool"
    params = load(tmp_path / "metadata" / "model_parameters.json")
    assert params["dtypes"]["bfloat16"]["total_params"] == 36
    assert params["dtypes"]["float32"]["trainable_params"] == 0


def test_forward_failure_with_given_inputs(tmp_path: Path) -> None:
    result = run("summarize", "tests.zoo:net", "--input-shape", "1,5,8,8", "-o", tmp_path)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "'conv' (Conv2d)" in line and "[[1, 5, 8, 8]]" in line
    assert not (tmp_path / "metadata").exists()


def test_llama_7b_geometry_on_meta_in_process() -> None:
    from gai_meta.sources import load_source
    from gai_meta.summary import introspect

    intro = introspect(load_source("tests.zoo:llama"), device="meta", run_forward=False)
    # embed 32000*4096 + lm_head 32000*4096 (untied) + norm 4096
    # + 32 * (4 * 4096*4096 attention + 3 * 4096*11008 MLP + 2 * 4096 norms)
    expected = 2 * 32000 * 4096 + 4096 + 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096)
    assert expected == 6_738_415_616
    assert intro.account.total == expected
    assert all(p.is_meta for p in intro.model.parameters())


def test_small_llama_on_meta_and_auto_give_same_shapes(tmp_path: Path) -> None:
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(
        "model: {_target_: 'tests.zoo:llama', layers: 2, hidden: 128, inter: 256, vocab: 500}\n"
    )
    meta = _summary(cfg, "--input", "input_ids=1,8:int64", "--device", "meta", "-o", tmp_path)
    auto = _summary(cfg, "--input", "input_ids=1,8:int64", "-o", tmp_path)
    assert meta["probe_device"] == "meta" and auto["probe_device"] == "cpu"
    assert meta["output_shapes"] == auto["output_shapes"]
    assert meta["output_shapes"][0] == [1, 8, 500]
    assert meta["total_parameters"] == auto["total_parameters"]


def test_llama_7b_cli_on_meta_is_fast_and_small(tmp_path: Path) -> None:
    code = (
        "import resource, sys\n"
        "from gai_meta.cli import main\n"
        "sys.argv = ['gai-meta', 'summarize', 'tests.zoo:llama', '--device', 'meta', '--input',"
        f" 'input_ids=1,16:int64', '-o', {str(tmp_path)!r}, '-q']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.strip().splitlines()[-1])
    assert peak_kib < 1.5 * 2**20, peak_kib  # well under 1.5 GB for 25 GiB of weights
    s = load(tmp_path / "metadata" / "model_summary.json")
    assert s["total_parameters"] == 6_738_415_616
    assert s["output_shapes"][0] == [1, 16, 32000]


def test_gpt2_against_torchinfo_which_counts_the_tie_twice() -> None:
    torchinfo = pytest.importorskip("torchinfo")
    ids = torch.zeros(1, 8, dtype=torch.long)
    stats = torchinfo.summary(zoo.gpt2(), input_data={"input_ids": ids}, verbose=0)
    # torchinfo adds lm_head.weight (= wte.weight, 1000*64) a second time
    assert stats.total_params == GPT2_PARAMS + 1000 * 64 == 236_288


def test_forward_failure_inside_a_transformer_names_keyword_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers.models.gpt2 import modeling_gpt2

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(modeling_gpt2.GPT2Attention, "forward", broken)
    result = run("summarize", "tests.zoo:gpt2", "--input", "input_ids=1,4:int64", "-o", tmp_path)
    assert result.exit_code == 2
    line = result.stderr.strip()
    # the attention module gets hidden_states [1, 4, 64] (after ln_1), by keyword or position
    assert "'transformer.h.0.attn' (GPT2Attention)" in line and "[1, 4, 64]" in line, line
    assert "RuntimeError: boom" in line and "\n" not in line
