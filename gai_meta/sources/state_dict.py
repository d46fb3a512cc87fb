"""A state dict gai-meta cannot build still gets a full account.

The keys are turned into a tree of empty modules holding meta tensors of the stored shapes and
dtypes (nothing is read or allocated), so the ordinary accounting works on it: totals, groups by
layer/depth/dtype, bytes. Buffers are told apart from parameters by the rule of
:func:`is_buffer`. There is no forward, so output shapes need ``--config`` or a factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gai_meta.sources import CheckpointInfo, LoadedModel

__all__ = ["BUFFER_NAMES", "StateDictModule", "is_buffer", "skeleton", "state_dict_source"]

# Last name components that PyTorch and common libraries use for buffers, not parameters.
BUFFER_NAMES = frozenset(
    {
        "running_mean",  # BatchNorm / InstanceNorm statistics
        "running_var",
        "num_batches_tracked",
        "anchors",  # detectors (GAI-YOLOv12, YOLO)
        "anchor_grid",
        "inv_freq",  # rotary embeddings
        "position_ids",  # Hugging Face embeddings
        "token_type_ids",
        "relative_position_index",  # Swin and friends
        "attn_mask",
        "masked_bias",  # GPT-2 attention masks
    }
)

NO_FORWARD_NOTE = (
    "the weights are not of an architecture gai-meta can build, so counts come from the state "
    "dict alone and output_shapes is null; pass --config with a YAML config (model section or "
    "model._target_) or a package.module:factory that builds the model, plus --input, to get shapes"
)


class StateDictModule(nn.Module):
    """A node of the tree made from a state dict's keys: tensors only, no forward."""


def is_buffer(name: str, tensor: Any) -> bool:
    """Whether a state-dict entry is a buffer: its last name component is in :data:`BUFFER_NAMES`,
    or its dtype is not floating point or complex (such tensors cannot be trainable parameters).
    """
    leaf = name.rpartition(".")[2]
    if leaf in BUFFER_NAMES:
        return True
    dtype = getattr(tensor, "dtype", None)
    return dtype is not None and not (dtype.is_floating_point or dtype.is_complex)


def _storage_key(t: torch.Tensor) -> tuple[Any, ...] | None:
    if t.is_meta or t.numel() == 0:
        return None
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None
    return (ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def skeleton(state_dict: Mapping[str, Any]) -> tuple[nn.Module, list[str]]:
    """The module tree of ``state_dict`` on meta (tensors sharing storage stay one tensor).

    Returns (module, keys that were left out: non-tensors and names that cannot be attributes).
    """
    root = StateDictModule()
    shared: dict[tuple[Any, ...], torch.Tensor] = {}
    skipped: list[str] = []
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            skipped.append(name)
            continue
        *path, leaf = name.split(".")
        key = _storage_key(value)
        tensor = shared.get(key) if key is not None else None
        try:
            owner: nn.Module = root
            for part in path:
                child = owner._modules.get(part)
                if child is None:
                    child = StateDictModule()
                    owner.add_module(part, child)
                owner = child
            if tensor is None:
                meta = torch.empty_like(value, device="meta")
                buffer = is_buffer(name, value)
                tensor = meta if buffer else nn.Parameter(meta, requires_grad=True)
                if key is not None:
                    shared[key] = tensor
            if isinstance(tensor, nn.Parameter):
                owner.register_parameter(leaf, tensor)
            else:
                owner.register_buffer(leaf, tensor)
        except (KeyError, TypeError, AttributeError):
            skipped.append(name)
    return root, skipped


def state_dict_source(
    state_dict: Mapping[str, Any],
    *,
    path: Path,
    kind: str,
    checkpoint: CheckpointInfo | None = None,
    experiment_dir: Path | None = None,
) -> LoadedModel:
    """A source that accounts for ``state_dict`` without building its architecture."""
    module, skipped = skeleton(state_dict)
    notes = [NO_FORWARD_NOTE]
    if skipped:
        notes.append(
            f"{len(skipped)} entries that are not tensors were left out (e.g. {skipped[0]})"
        )
    return LoadedModel(
        source=str(path),
        kind=kind,
        build=lambda device: module,
        checkpoint=checkpoint,
        experiment_dir=experiment_dir,
        notes=notes,
        architecture="StateDict",
        runnable=False,
    )
