"""Formats that execute code stored in the file: TorchScript archives and ``torch.export`` ``.pt2``.

Only reached with ``--trust-checkpoint`` (the torch loader refuses them otherwise and names the
flag). TorchScript keeps no shapes, so its output shapes come from running ``forward`` on the
given input (hooks cannot be put on scripted submodules: the top-level output only). An exported
program keeps its example inputs and every graph node's shape, so a ``.pt2`` gives per-layer
shapes without running anything; with ``--input`` it is run on that input instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gai_meta.errors import CheckpointError
from gai_meta.inputs import InputSpec
from gai_meta.probe import ModuleCall, ProbeResult, model_tensor_ids, tensor_structure
from gai_meta.sources import CheckpointInfo, LoadedModel, LoadOptions

__all__ = ["load_exported", "load_torchscript"]


def _reason(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]


def _script_types(model: nn.Module) -> dict[str, str]:
    return {
        name: str(getattr(m, "original_name", type(m).__name__))
        for name, m in model.named_modules()
    }


def load_torchscript(path: Path, options: LoadOptions) -> LoadedModel:
    """A TorchScript archive (``torch.jit.save``), loaded with ``torch.jit.load``."""

    def load(device: str) -> nn.Module:
        # Scripted code cannot run on the meta device; a meta request gets the cpu module.
        where = "cpu" if device == "meta" else device
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
                module: nn.Module = torch.jit.load(str(path), map_location=where)  # type: ignore[no-untyped-call]
            return module
        except Exception as err:
            raise CheckpointError(
                f"not a loadable TorchScript archive: {_reason(err)}; re-save it with "
                "torch.jit.save",
                path=path,
            ) from err

    first = load("cpu")
    types = _script_types(first)
    cache: dict[str, nn.Module] = {"cpu": first}

    def build(device: str) -> nn.Module:
        where = "cpu" if device == "meta" else device
        if where not in cache:
            cache[where] = load(where)
        return cache[where]

    return LoadedModel(
        source=str(path),
        kind="torchscript",
        build=build,
        checkpoint=CheckpointInfo(path=path, format="torchscript"),
        architecture=types.get("", "RecursiveScriptModule"),
        module_types=types,
        notes=["TorchScript keeps no per-layer shapes: only the model's outputs are recorded"],
    )


def _short_type(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _val_shapes(value: Any) -> list[list[int]]:
    if isinstance(value, torch.Tensor):
        return [list(value.shape)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _val_shapes(v)]
    return []


def _static_probe(ep: Any, gm: nn.Module) -> ProbeResult:
    """Per-module output shapes from the exported graph's node metadata (no forward run)."""
    last: dict[str, tuple[str, list[list[int]]]] = {}
    order: list[str] = []
    output: Any = None
    for node in ep.graph.nodes:
        if node.op == "output":
            output = node.meta.get("val")
            if output is None:
                output = [n.meta.get("val") for n in node.args[0]]
            continue
        if node.op != "call_function":
            continue
        shapes = _val_shapes(node.meta.get("val"))
        for path, cls in (node.meta.get("nn_module_stack") or {}).values():
            name = "" if path in ("", "L['self']") else str(path)
            if name not in last:
                order.append(name)
            last[name] = (_short_type(str(cls)), shapes)
    calls = [
        ModuleCall(
            index=i,
            name=name,
            type=last[name][0],
            depth=0 if not name else name.count(".") + 1,
            output_shapes=last[name][1],
        )
        for i, name in enumerate(order)
    ]
    out = list(output) if isinstance(output, (list, tuple)) else [output]
    if len(out) == 1:
        out = out[0]
    own = model_tensor_ids(gm)
    return ProbeResult(
        calls=calls,
        output_shapes=_val_shapes(out if isinstance(out, (list, tuple)) else [out]),
        output_structure=tensor_structure(_fake_free(out), own),
        device="exported-graph",  # nothing ran: shapes recorded when the program was exported
    )


def _fake_free(value: Any) -> Any:
    # FakeTensors describe shapes without data; plain meta tensors of the same shape print alike.
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return [_fake_free(v) for v in value]
    return value


def _example_inputs(ep: Any) -> tuple[InputSpec, ...] | None:
    example = getattr(ep, "example_inputs", None)
    if not example:
        return None
    args, kwargs = example
    specs = [
        InputSpec(None, tuple(a.shape), str(a.dtype).removeprefix("torch."))
        for a in args
        if isinstance(a, torch.Tensor)
    ]
    specs += [
        InputSpec(k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in kwargs.items()
        if isinstance(v, torch.Tensor)
    ]
    return tuple(specs) or None


def load_exported(path: Path, options: LoadOptions) -> LoadedModel:
    """A ``torch.export`` program (``.pt2``), loaded with ``torch.export.load`` then ``.module()``."""
    try:
        ep = torch.export.load(str(path))
        gm = ep.module()
    except Exception as err:
        raise CheckpointError(
            f"not a loadable torch.export program: {_reason(err)}; re-save it with "
            "torch.export.save",
            path=path,
        ) from err
    types: dict[str, str] = {}
    for node in ep.graph.nodes:
        for fqn, cls in (node.meta.get("nn_module_stack") or {}).values():
            types.setdefault(str(fqn), _short_type(str(cls)))
    root = types.get("")
    for name, _ in gm.named_modules():
        types.setdefault(name, "GraphModule" if not name else "Module")
    if root is not None:
        types[""] = root
    static = _static_probe(ep, gm)

    def build(device: str) -> nn.Module:
        return gm if device in ("meta", "cpu") else gm.to(device)

    return LoadedModel(
        source=str(path),
        kind="exported-program",
        build=build,
        checkpoint=CheckpointInfo(path=path, format="torch.export"),
        inputs=_example_inputs(ep),
        architecture=root or "ExportedProgram",
        static_probe=static,
        module_types=types,
    )
