"""Dummy-input specifications: ``--input-shape`` and ``--input``, parsed without torch.

``--input-shape 1,3,640,640`` is one positional float tensor. ``--input`` is repeatable:
``--input input_ids=1,16:int64`` is a keyword tensor, ``--input 1,3,64,64`` a positional one;
the dtype after ``:`` defaults to the model's floating-point dtype. Parsing is torch-free (the CLI
parses options before it imports torch); :func:`make_inputs` builds the tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gai_meta.errors import InputSpecError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPES",
    "InputSpec",
    "make_inputs",
    "parse_input",
    "parse_input_shape",
    "parse_inputs",
]

# Accepted spellings -> canonical torch dtype name.
DTYPES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "fp32": "float32",
    "float16": "float16",
    "half": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float64": "float64",
    "fp64": "float64",
    "double": "float64",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One dummy input: positional when ``name`` is None; ``dtype`` None means the model's float.

    Example: ``InputSpec("input_ids", (1, 16), "int64")``.
    """

    name: str | None
    shape: tuple[int, ...]
    dtype: str | None = None

    def to_json(self, float_dtype: str = "float32") -> dict[str, Any]:
        """``{"name", "shape", "dtype"}`` with the dtype actually used."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype or float_dtype}


def _dims(text: str, option: str, spec: str) -> tuple[int, ...]:
    sep = "," if "," in text else "x"  # 1,3,64,64 or 1x3x64x64
    parts = [p.strip() for p in text.split(sep)]
    dims: list[int] = []
    for i, part in enumerate(parts):
        try:
            value = int(part)
        except ValueError:
            raise InputSpecError(
                f"{option} '{spec}': part {i + 1} ('{part}') is not a whole number; "
                "write the dimensions like 1,3,640,640"
            ) from None
        if value < 1:
            raise InputSpecError(f"{option} '{spec}': part {i + 1} ({value}) must be at least 1")
        dims.append(value)
    return tuple(dims)


def parse_input_shape(spec: str) -> tuple[int, ...]:
    """``"1,3,640,640"`` -> ``(1, 3, 640, 640)``; an InputSpecError names the part that is wrong."""
    return _dims(spec, "--input-shape", spec)


def parse_input(spec: str) -> InputSpec:
    """``"input_ids=1,16:int64"`` -> ``InputSpec("input_ids", (1, 16), "int64")``.

    The name (before ``=``) is optional, and so is the dtype (after ``:``).
    """
    text = spec.strip()
    name: str | None = None
    if "=" in text:
        name, text = (s.strip() for s in text.split("=", 1))
        if not name.isidentifier():
            raise InputSpecError(
                f"--input '{spec}': the name '{name}' is not a Python identifier; write "
                "NAME=D0,D1,...[:DTYPE], e.g. input_ids=1,16:int64"
            )
    dtype: str | None = None
    if ":" in text:
        text, raw = (s.strip() for s in text.rsplit(":", 1))
        dtype = DTYPES.get(raw.lower())
        if dtype is None:
            raise InputSpecError(
                f"--input '{spec}': the dtype '{raw}' is not one of {', '.join(sorted(set(DTYPES.values())))}"
            )
    if not text:
        raise InputSpecError(
            f"--input '{spec}': no dimensions; write [NAME=]D0,D1,...[:DTYPE], e.g. 1,3,224,224"
        )
    return InputSpec(name, _dims(text, "--input", spec), dtype)


def parse_inputs(
    input_shape: str | None = None, inputs: Sequence[str] = ()
) -> tuple[InputSpec, ...] | None:
    """The dummy inputs of ``--input-shape`` and ``--input`` together; None when neither is given."""
    if input_shape and inputs:
        raise InputSpecError(
            "pass either --input-shape (one float tensor) or --input (repeatable), not both"
        )
    if input_shape:
        return (InputSpec(None, parse_input_shape(input_shape)),)
    if not inputs:
        return None
    specs = tuple(parse_input(s) for s in inputs)
    names = [s.name for s in specs if s.name is not None]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputSpecError(f"--input: the name '{dupes[0]}' is given more than once")
    return specs


def make_inputs(
    specs: Sequence[InputSpec], device: Any, float_dtype: torch.dtype
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The tensors of ``specs`` on ``device``: (positional args, keyword args).

    Values are zeros (valid token ids and class indices), except integer/bool inputs whose name
    contains ``mask``, which are ones (nothing masked out).
    """
    import torch

    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for spec in specs:
        dtype = getattr(torch, spec.dtype) if spec.dtype else float_dtype
        fill = (
            torch.ones
            if spec.name and "mask" in spec.name and not dtype.is_floating_point
            else torch.zeros
        )
        tensor = fill(spec.shape, dtype=dtype, device=device)
        if spec.name is None:
            args.append(tensor)
        else:
            kwargs[spec.name] = tensor
    return tuple(args), kwargs
