"""Dummy forward pass with hooks: every module call's output shapes, whatever the output structure.

The hooks live in :class:`_CallRecorder`, a context manager that keeps every handle and removes
them in ``finally``, so inspecting a model never leaves hooks behind, even when the forward fails.
Outputs are walked recursively (tensors, lists, tuples, dicts, dataclasses, named tuples, pytree
nodes such as Hugging Face ``ModelOutput``, and plain objects such as caches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from gai_meta.errors import ForwardError

__all__ = ["ModuleCall", "ProbeResult", "iter_tensors", "probe", "tensor_structure"]

_MAX_DEPTH = 12


@dataclasses.dataclass(frozen=True)
class ModuleCall:
    """One call of one module during the dummy forward pass (a module called twice appears twice)."""

    index: int
    name: str
    type: str
    depth: int
    output_shapes: list[list[int]]


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What the dummy forward pass showed."""

    calls: list[ModuleCall]
    output_shapes: list[list[int]]
    output_structure: Any
    device: str


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Yield every tensor leaf of a nested output in traversal order."""
    for _, tensor in _walk(obj, (), set(), 0):
        yield tensor


def _children(obj: Any) -> list[tuple[Any, Any]] | None:
    """(key, child) pairs of a container, or None when ``obj`` is a leaf."""
    if isinstance(obj, (torch.Tensor, str, bytes, int, float, bool, type(None))):
        return None
    if isinstance(obj, Mapping):
        return list(obj.items())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return [(name, getattr(obj, name)) for name in obj._fields]
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    if isinstance(obj, (set, frozenset)):
        return list(enumerate(obj))
    node = pytree.SUPPORTED_NODES.get(type(obj))
    if node is not None:
        children, _ = node.flatten_fn(obj)
        return list(enumerate(children))
    if isinstance(obj, (nn.Module, type)) or callable(obj):
        return None
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):  # caches and other plain result objects
        return [(k, v) for k, v in attrs.items() if not k.startswith("_")]
    return None


def _walk(
    obj: Any, path: tuple[Any, ...], seen: set[int], depth: int
) -> Iterator[tuple[tuple[Any, ...], torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield path, obj
        return
    if depth >= _MAX_DEPTH or id(obj) in seen:
        return
    children = _children(obj)
    if children is None:
        return
    seen.add(id(obj))
    for key, child in children:
        yield from _walk(child, (*path, key), seen, depth + 1)
    seen.discard(id(obj))


def tensor_structure(obj: Any, model_tensors: Mapping[int, str] | None = None) -> Any:
    """The nested form of an output with names: tensors become ``{"shape", "dtype"}``.

    Containers keep their keys; dataclasses and other objects gain a ``"__class__"`` entry.
    Tensors that are the model's own parameters or buffers are marked with ``"model_tensor"``.
    """
    return _structure(obj, model_tensors or {}, set(), 0)


def _structure(obj: Any, model_tensors: Mapping[int, str], seen: set[int], depth: int) -> Any:
    if isinstance(obj, torch.Tensor):
        node: dict[str, Any] = {
            "shape": list(obj.shape),
            "dtype": str(obj.dtype).removeprefix("torch."),
        }
        if id(obj) in model_tensors:
            node["model_tensor"] = model_tensors[id(obj)]
        return node
    if isinstance(obj, (str, int, float, bool, type(None))):
        return obj
    if depth >= _MAX_DEPTH or id(obj) in seen:
        return f"<{type(obj).__name__}>"
    children = _children(obj)
    if children is None:
        return f"<{type(obj).__name__}>"
    seen.add(id(obj))
    try:
        if type(obj) in (list, tuple):
            return [_structure(v, model_tensors, seen, depth + 1) for _, v in children]
        out: dict[str, Any] = {}
        if type(obj) is not dict:
            out["__class__"] = type(obj).__name__
        for key, value in children:
            out[str(key)] = _structure(value, model_tensors, seen, depth + 1)
        return out
    finally:
        seen.discard(id(obj))


def _shapes(obj: Any, exclude: Mapping[int, str] | None = None) -> list[list[int]]:
    return [list(t.shape) for t in iter_tensors(obj) if exclude is None or id(t) not in exclude]


class _CallRecorder:
    """Context manager: hooks on every submodule, removed on exit whatever happens."""

    def __init__(self, model: nn.Module) -> None:
        self._names = {id(m): (name, m) for name, m in model.named_modules()}
        self._handles: list[Any] = []
        self.calls: list[dict[str, Any]] = []
        # Calls that have started but not returned: after an exception, the innermost one is
        # the module where the forward failed, with the input shapes it received.
        self.stack: list[tuple[dict[str, Any], list[list[int]]]] = []

    def __enter__(self) -> _CallRecorder:
        try:
            for name, module in self._names.values():
                try:
                    pre = module.register_forward_pre_hook(self._pre(name), with_kwargs=True)
                except (RuntimeError, NotImplementedError):
                    continue  # ScriptModules take no hooks: their calls go unrecorded
                self._handles.append(pre)
                self._handles.append(module.register_forward_hook(self._post()))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._names.clear()

    def _pre(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            record = {
                "index": len(self.calls),
                "name": name,
                "type": type(module).__name__,
                "depth": 0 if not name else name.count(".") + 1,
                "output_shapes": None,
            }
            self.calls.append(record)
            # Keyword tensors count too: transformer blocks get hidden_states=... by name.
            self.stack.append((record, _shapes((args, kwargs))))

        return hook

    def _post(self) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            record, _ = self.stack.pop()
            record["output_shapes"] = _shapes(output)

        return hook


def model_tensor_ids(model: nn.Module) -> dict[int, str]:
    """id -> name of every parameter and buffer of ``model`` (outputs that are these are not outputs)."""
    ids: dict[int, str] = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        ids.setdefault(id(tensor), name)
    return ids


def probe(
    model: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any] | None = None
) -> ProbeResult:
    """Run one forward pass (eval mode, no grad) and record every module call's output shapes.

    Example::

        result = probe(model, (torch.zeros(1, 3, 64, 64, device="meta"),))
        result.output_shapes  # [[1, 2, 32, 32, 15], ...]
    """
    kwargs = dict(kwargs or {})
    was_training = model.training
    model.eval()
    try:
        with _CallRecorder(model) as recorder, torch.no_grad():
            try:
                output = model(*args, **kwargs)
            except Exception as err:
                raise _forward_error(err, recorder, args, kwargs) from err
    finally:
        model.train(was_training)
    own = model_tensor_ids(model)
    calls = [
        ModuleCall(
            index=c["index"],
            name=c["name"],
            type=c["type"],
            depth=c["depth"],
            output_shapes=c["output_shapes"] or [],
        )
        for c in recorder.calls
    ]
    device = next((str(t.device) for t in iter_tensors((args, kwargs))), "cpu")
    return ProbeResult(
        calls=calls,
        output_shapes=_shapes(output, own),
        output_structure=tensor_structure(output, own),
        device=device,
    )


def _forward_error(
    err: Exception, recorder: _CallRecorder, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ForwardError:
    reason = " ".join(f"{type(err).__name__}: {err}".split())
    if len(reason) > 400:
        reason = reason[:397] + "..."
    if not recorder.stack or recorder.stack[-1][0]["name"] == "":
        shapes = _shapes((args, kwargs))
        return ForwardError(
            f"the forward pass failed in the top-level model with input shapes {shapes}: "
            f"{reason}; check --input-shape / --input"
        )
    record, shapes = recorder.stack[-1]
    name, cls = record["name"], record["type"]
    return ForwardError(
        f"the forward pass failed in module '{name}' ({cls}) which received input shapes "
        f"{shapes}: {reason}; check --input-shape / --input"
    )
