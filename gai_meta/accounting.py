"""Parameters, buffers, groups and bytes: pure functions over a module, no I/O.

Every parameter tensor is counted once (tied weights included) and belongs to exactly one
module, the first one that owns it directly; so every grouping here partitions the total.
Bytes come from each tensor's dtype, never an assumed 4 bytes per value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from gai_meta.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "GROUP_KEYS",
    "Account",
    "BufferRecord",
    "Group",
    "ParamRecord",
    "account",
    "group",
    "mb",
    "retype",
]


def mb(n_bytes: int) -> float:
    """Bytes to MiB with two decimals (the training system's "MB")."""
    return round(n_bytes / 2**20, 2)


@dataclasses.dataclass(frozen=True)
class ParamRecord:
    """One unique parameter tensor, listed under the module that owns it directly."""

    name: str
    module: str
    module_type: str
    shape: tuple[int, ...]
    numel: int
    requires_grad: bool
    dtype: str
    bytes: int
    aliases: tuple[str, ...] = ()  # other names of the same (tied) tensor


@dataclasses.dataclass(frozen=True)
class BufferRecord:
    """One unique buffer (running statistics, anchors, ...): reported apart from parameters."""

    name: str
    module: str
    module_type: str
    shape: tuple[int, ...]
    numel: int
    dtype: str
    bytes: int
    persistent: bool


@dataclasses.dataclass(frozen=True)
class Account:
    """The parameters and buffers of a model, each tensor once."""

    params: tuple[ParamRecord, ...]
    buffers: tuple[BufferRecord, ...]
    module_types: dict[str, str]  # every module name -> class name, in registration order

    @property
    def total(self) -> int:
        return sum(p.numel for p in self.params)

    @property
    def trainable(self) -> int:
        return sum(p.numel for p in self.params if p.requires_grad)

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    @property
    def parameter_bytes(self) -> int:
        return sum(p.bytes for p in self.params)

    @property
    def buffer_numel(self) -> int:
        return sum(b.numel for b in self.buffers)

    @property
    def buffer_bytes(self) -> int:
        return sum(b.bytes for b in self.buffers)

    def by_module(self) -> dict[str, list[ParamRecord]]:
        """Module name -> the parameters it owns directly, in first-seen order."""
        owned: dict[str, list[ParamRecord]] = {}
        for p in self.params:
            owned.setdefault(p.module, []).append(p)
        return owned


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _tensor_bytes(t: Any) -> int:
    # element_size() works on meta tensors too; numel * itemsize is the logical size.
    return int(t.numel()) * int(t.element_size())


def _split(name: str) -> tuple[str, str]:
    module, _, leaf = name.rpartition(".")
    return module, leaf


def account(model: nn.Module) -> Account:
    """Account for every parameter and buffer of ``model``, each unique tensor once.

    Example::

        acc = account(nn.Linear(3, 2))
        acc.total  # 3*2 + 2 = 8
    """
    modules = dict(model.named_modules(remove_duplicate=True))
    types = {name: type(m).__name__ for name, m in modules.items()}
    # remove_duplicate=False gives every name of a tied tensor; the first one is canonical.
    params: dict[int, ParamRecord] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        key = id(p)
        if key in params:
            first = params[key]
            params[key] = dataclasses.replace(first, aliases=(*first.aliases, name))
            continue
        owner, _ = _split(name)
        params[key] = ParamRecord(
            name=name,
            module=owner,
            module_type=types.get(owner, "?"),
            shape=tuple(p.shape),
            numel=int(p.numel()),
            requires_grad=bool(p.requires_grad),
            dtype=_dtype_name(p.dtype),
            bytes=_tensor_bytes(p),
        )
    buffers: dict[int, BufferRecord] = {}
    for name, b in model.named_buffers(remove_duplicate=False):
        if id(b) in buffers or id(b) in params:
            continue
        owner, leaf = _split(name)
        owner_module = modules.get(owner)
        persistent = owner_module is None or leaf not in owner_module._non_persistent_buffers_set
        buffers[id(b)] = BufferRecord(
            name=name,
            module=owner,
            module_type=types.get(owner, "?"),
            shape=tuple(b.shape),
            numel=int(b.numel()),
            dtype=_dtype_name(b.dtype),
            bytes=_tensor_bytes(b),
            persistent=persistent,
        )
    return Account(
        params=tuple(params.values()), buffers=tuple(buffers.values()), module_types=types
    )


def retype(acc: Account, types: dict[str, str]) -> Account:
    """``acc`` with module class names taken from ``types`` (name -> class) where it has one.

    TorchScript and exported modules are instances of generated classes; their original class
    names are kept apart (``original_name``, the graph's module stack).
    """
    return Account(
        params=tuple(
            dataclasses.replace(p, module_type=types.get(p.module, p.module_type))
            for p in acc.params
        ),
        buffers=tuple(
            dataclasses.replace(b, module_type=types.get(b.module, b.module_type))
            for b in acc.buffers
        ),
        module_types={name: types.get(name, t) for name, t in acc.module_types.items()},
    )


@dataclasses.dataclass(frozen=True)
class Group:
    """A set of parameters: ``count`` is the number of modules owning them, ``tensors`` their number."""

    name: str
    count: int
    tensors: int
    total_params: int
    trainable_params: int
    bytes: int


def _prefix(name: str, depth: int) -> str:
    parts = name.split(".") if name else []
    return ".".join(parts[:depth])


def _key_fn(by: str, depth: int | None) -> Callable[[ParamRecord], str]:
    if by == "type":
        return lambda p: p.module_type
    if by == "layer":
        if depth is None:
            return lambda p: p.module
        return lambda p: _prefix(p.module, depth)
    if by == "depth":
        d = 1 if depth is None else depth
        return lambda p: _prefix(p.module, d)
    if by == "dtype":
        return lambda p: p.dtype
    if by == "trainable":
        return lambda p: "trainable" if p.requires_grad else "frozen"
    raise UsageError(f"unknown --group-by '{by}'; choose one of {', '.join(GROUP_KEYS)}")


GROUP_KEYS = ("type", "layer", "depth", "dtype", "trainable")


def group(acc: Account, by: str, *, depth: int | None = None) -> list[Group]:
    """Partition the parameters of ``acc`` by ``by`` (one of :data:`GROUP_KEYS`).

    ``layer`` groups by owning module (cut to ``depth`` name components when given), ``depth`` by
    the first ``depth`` name components (default 1); the root module's own parameters fall in
    the group ``""``. Groups keep first-seen order; their ``total_params`` sum to ``acc.total``.
    """
    if depth is not None and depth < 0:
        raise UsageError(f"--depth must be 0 or more, got {depth}")
    key = _key_fn(by, depth)
    buckets: dict[str, list[ParamRecord]] = {}
    for p in acc.params:
        buckets.setdefault(key(p), []).append(p)
    return [_make_group(name, members) for name, members in buckets.items()]


def _make_group(name: str, members: Iterable[ParamRecord]) -> Group:
    items = list(members)
    return Group(
        name=name,
        count=len({p.module for p in items}),
        tensors=len(items),
        total_params=sum(p.numel for p in items),
        trainable_params=sum(p.numel for p in items if p.requires_grad),
        bytes=sum(p.bytes for p in items),
    )
