"""safetensors files: the header is read and checked without loading any tensor.

Layout: 8 bytes little-endian header length N, N bytes of JSON ``{name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {...}}``, then the data. Offsets are relative to the
data and must lie inside it, not overlap, and span exactly ``numel * dtype size`` bytes. Without
``--config`` the file is accounted for from the header alone; with it, the model is built and the
tensors are memory-mapped (``torch.from_file``), read only when a real forward needs them.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.errors import CheckpointError
from gai_meta.sources import (
    CheckpointInfo,
    LoadedModel,
    LoadOptions,
    SourceFormat,
    register_format,
)

if TYPE_CHECKING:
    import torch

__all__ = ["SAFETENSORS_DTYPES", "TensorEntry", "read_header"]

# safetensors dtype -> (torch dtype name, bytes per element)
SAFETENSORS_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_MAX_HEADER = 100 * 2**20  # the safetensors library refuses headers above 100 MB too

TensorEntry = tuple[str, tuple[int, ...], int, int]  # dtype name, shape, begin, end (absolute)


def _sniff(path: Path, head: bytes) -> bool:
    if len(head) < 10 or head[8:9] != b"{":
        return False
    # Text starts with printable bytes, which as a length would be absurd (> 2**40); a
    # plausible length makes the file safetensors even when it points past the end (reported).
    return bool(struct.unpack("<Q", head[:8])[0] < 2**40)


def read_header(path: Path) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """(tensors by name, ``__metadata__``) of a safetensors file, every offset checked."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise CheckpointError(
                "too short for a safetensors file (no 8-byte header length)", path=path
            )
        (n,) = struct.unpack("<Q", prefix)
        if n > size - 8 or n > _MAX_HEADER:
            raise CheckpointError(
                f"safetensors header length {n} goes beyond the file ({size} bytes); the file is "
                "truncated or not safetensors",
                path=path,
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(
            f"safetensors header is not valid JSON ({err}); the file is corrupt", path=path
        ) from err
    if not isinstance(header, dict):
        raise CheckpointError(
            "safetensors header is not a JSON object; the file is corrupt", path=path
        )
    metadata = header.pop("__metadata__", None) or {}
    data_start, data_len = 8 + n, size - 8 - n
    tensors: dict[str, TensorEntry] = {}
    for name, entry in header.items():
        tensors[name] = _entry(path, name, entry, data_start, data_len)
    spans = sorted((e[2], e[3], name) for name, e in tensors.items() if e[3] > e[2])
    for (b0, e0, a), (b1, _, b) in itertools.pairwise(spans):
        if b1 < e0:
            raise CheckpointError(
                f"safetensors tensors '{a}' and '{b}' overlap (bytes {b0 - data_start}-"
                f"{e0 - data_start} and from {b1 - data_start}); the file is corrupt",
                path=path,
            )
    return tensors, {str(k): str(v) for k, v in dict(metadata).items()}


def _entry(path: Path, name: str, entry: Any, data_start: int, data_len: int) -> TensorEntry:
    def bad(what: str) -> CheckpointError:
        return CheckpointError(
            f"safetensors tensor '{name}': {what}; the file is corrupt", path=path
        )

    if not isinstance(entry, dict):
        raise bad("entry is not an object")
    dtype = entry.get("dtype")
    if dtype not in SAFETENSORS_DTYPES:
        raise bad(f"unknown dtype {dtype!r} (expected one of {', '.join(SAFETENSORS_DTYPES)})")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise bad(f"shape {shape!r} is not a list of non-negative integers")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise bad(f"data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise bad(f"data_offsets [{begin}, {end}] lie outside the {data_len} data bytes")
    numel = 1
    for d in shape:
        numel *= d
    torch_name, itemsize = SAFETENSORS_DTYPES[dtype]
    if end - begin != numel * itemsize:
        raise bad(
            f"data_offsets span {end - begin} bytes but shape {shape} of {dtype} needs "
            f"{numel * itemsize}"
        )
    return torch_name, tuple(shape), data_start + begin, data_start + end


def meta_state_dict(tensors: dict[str, TensorEntry]) -> dict[str, torch.Tensor]:
    """Meta tensors of the header's shapes and dtypes (nothing read)."""
    import torch

    return {
        name: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        for name, (dtype, shape, _, _) in tensors.items()
    }


def mapped_state_dict(path: Path, tensors: dict[str, TensorEntry]) -> dict[str, torch.Tensor]:
    """The tensors as views of one private memory map of the file (pages read on first touch)."""
    import torch

    size = os.path.getsize(path)
    if size == 0:
        return {}
    whole = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)
    out: dict[str, torch.Tensor] = {}
    for name, (dtype_name, shape, begin, end) in tensors.items():
        dtype = getattr(torch, dtype_name)
        raw = whole[begin:end]
        try:
            t = raw.view(dtype)
        except RuntimeError:  # unaligned offset: copy this one tensor
            t = raw.clone().view(dtype)
        out[name] = t.reshape(shape)
    return out


def load_safetensors(path: Path, options: LoadOptions) -> LoadedModel:
    from gai_meta.sources.recipe import recipe_from_config, with_weights
    from gai_meta.sources.state_dict import state_dict_source

    tensors, metadata = read_header(path)
    if not tensors:
        raise CheckpointError(
            "safetensors file holds no tensors; expected model weights", path=path
        )
    info = CheckpointInfo(
        path=path, format="safetensors", extra={"metadata": metadata} if metadata else {}
    )
    if options.config is None:
        return state_dict_source(
            meta_state_dict(tensors), path=path, kind="state-dict", checkpoint=info
        )
    recipe = recipe_from_config(options.config, trust=options.trust)
    # Checked on meta copies first: a mismatch is reported before anything is mapped.
    loaded = with_weights(
        recipe, meta_state_dict(tensors), path=path, kind="checkpoint", checkpoint=info
    )
    mapped: dict[str, torch.Tensor] = {}
    build_meta = loaded.build

    def build(device: str) -> Any:
        if device == "meta":
            return build_meta("meta")
        if not mapped:
            mapped.update(mapped_state_dict(path, tensors))
        real = with_weights(recipe, mapped, path=path, kind="checkpoint", checkpoint=info)
        return real.build(device)

    loaded.build = build
    return loaded


register_format(SourceFormat("safetensors", _sniff, load_safetensors))
