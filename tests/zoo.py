"""Models the source tests import by name (``tests.zoo:gpt2``): factories, small and deterministic.

Expected counts are worked out by hand in the tests that use them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Net(nn.Module):
    """Conv(3->4, 3x3) + BatchNorm(4) + Linear(4->2): 112 + 8 + 10 = 130 parameters."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def net(classes: int = 2) -> nn.Module:
    return Net(classes)


class KwModel(nn.Module):
    """Keyword inputs, dict outputs, a frozen layer, bf16 parameters and buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.embed.requires_grad_(False)
        self.proj = nn.Linear(8, 4).to(torch.bfloat16)
        self.register_buffer("scale", torch.ones(4, dtype=torch.bfloat16))
        self.register_buffer("counter", torch.zeros((), dtype=torch.int64))

    def forward(self, tokens: torch.Tensor, *, mask: torch.Tensor | None = None) -> dict[str, Any]:
        h = self.embed(tokens)
        y = self.proj(h.to(torch.bfloat16)) * self.scale
        return {"logits": y, "pooled": y.mean(1), "mask": mask}


def kw_model() -> nn.Module:
    return KwModel()


def gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        vocab_size=1000,
        n_positions=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(cfg)


def bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=64,
        type_vocab_size=2,
    )
    return BertModel(cfg)


def llama(
    layers: int = 32, hidden: int = 4096, inter: int = 11008, vocab: int = 32000
) -> nn.Module:
    """Llama-2-7B geometry by default (6,738,415,616 parameters): build it on meta only."""
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = max(1, hidden // 128)
    cfg = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        vocab_size=vocab,
    )
    return LlamaForCausalLM(cfg)


def not_a_module() -> dict[str, int]:
    return {"a": 1}


def raises() -> nn.Module:
    raise ValueError("bad width 0")


NOT_CALLABLE = 42


class DataDependent(nn.Module):
    """A forward the meta device cannot run: it reads a value (``int(...)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        return y * int(y.shape[0] + (y > 1e9).sum())


def data_dependent() -> nn.Module:
    return DataDependent()
