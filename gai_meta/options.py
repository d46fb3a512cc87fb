"""Parsing of estimate options (batch sizes, memory sizes, dtypes, optimizers); torch-free.

Every parser raises :class:`~gai_meta.errors.UsageError` (exit 2) with one line that names the
option, what it got and what it expects. ``resolve_dtype`` is the only function that imports
torch, inside its body.
"""

from __future__ import annotations

import re
from typing import Any

from gai_meta.errors import UsageError
from gai_meta.inputs import DTYPES as _INPUT_DTYPES

__all__ = [
    "DTYPES",
    "OPTIMIZER_NAMES",
    "parse_batch_size",
    "parse_batch_sizes",
    "parse_dtype",
    "parse_memory",
    "parse_optimizer",
    "resolve_dtype",
]

# One table of dtype spellings for --input and --dtype; --dtype takes its floating ones.
DTYPES: dict[str, str] = {
    k: v for k, v in _INPUT_DTYPES.items() if v.startswith(("float", "bfloat"))
}
"""Accepted ``--dtype`` spellings -> canonical torch dtype name."""

OPTIMIZER_NAMES = ("adamw", "adam", "sgd")

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_batch_size(text: str | int, *, option: str = "--batch-size") -> int:
    """One positive batch size: ``parse_batch_size("8") == 8``."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = str(text).strip()
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise UsageError(f"{option} '{text}' is not a whole number; pass e.g. {option} 8")
        value = int(raw)
    if value < 1:
        raise UsageError(f"{option} {value} must be at least 1")
    return value


def parse_batch_sizes(text: str, *, option: str = "--batch-size") -> list[int]:
    """A comma-separated list of batch sizes, in the given order without repeats.

    Example: ``parse_batch_sizes("1,8,32") == [1, 8, 32]``.
    """
    parts = [p for p in str(text).split(",")]
    if not parts or any(not p.strip() for p in parts):
        raise UsageError(f"{option} '{text}' has an empty item; pass e.g. {option} 1,8,32")
    sizes: list[int] = []
    for part in parts:
        size = parse_batch_size(part, option=option)
        if size not in sizes:
            sizes.append(size)
    return sizes


def parse_memory(text: str, *, option: str = "--max-memory") -> int:
    """A memory size in bytes: ``24GiB``, ``512MiB``, ``16GB`` (decimal), ``1e9`` or bytes.

    Example: ``parse_memory("24GiB") == 24 * 2**30``.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-z]*)\s*", str(text).lower())
    if match is None or match.group(2) not in _UNITS:
        raise UsageError(f"{option} '{text}' is not a memory size; pass e.g. 24GiB, 512MiB or 16GB")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 1:
        raise UsageError(f"{option} '{text}' must be more than 0 bytes")
    return int(value)


def parse_dtype(text: str, *, option: str = "--dtype") -> str:
    """A floating dtype name: ``parse_dtype("bf16") == "bfloat16"``."""
    key = str(text).strip().lower().removeprefix("torch.")
    if key not in DTYPES:
        raise UsageError(
            f"{option} '{text}' is not a known floating dtype; "
            "use one of fp32, fp16, bf16, fp64 (or float32, float16, bfloat16, float64)"
        )
    return DTYPES[key]


def parse_optimizer(text: str, *, option: str = "--optimizer") -> str:
    """An optimizer name: ``parse_optimizer("AdamW") == "adamw"``."""
    key = str(text).strip().lower()
    if key not in OPTIMIZER_NAMES:
        raise UsageError(
            f"{option} '{text}' is not a known optimizer; use one of {', '.join(OPTIMIZER_NAMES)}"
        )
    return key


def resolve_dtype(name: str | None) -> Any:
    """The ``torch.dtype`` for a name from :func:`parse_dtype` (None stays None)."""
    if name is None:
        return None
    import torch

    return getattr(torch, parse_dtype(name))
