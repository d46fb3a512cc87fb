"""Name -> implementation registries for backbones and model families.

Importing this module does not import torch: the built-in entries are stored as
``(module, attribute)`` pairs and imported on first lookup, so config validation (which only
needs the known names) stays cheap. Third-party code adds entries with the decorators::

    @register_backbone("my_backbone")
    class MyBackbone(torch.nn.Module): ...

    @register_model_family("my_family")
    def build_my_family(cfg: GaiYoloConfig) -> torch.nn.Module: ...

Backbone contract: ``cls(in_channels=..., base_channels=..., depth=...)`` builds ``depth``
stages, exposes ``feature_channels`` (one int per stage) and ``out_channels``, and its forward
returns a dict of stage features in stage order. A model family is a callable
``(GaiYoloConfig) -> torch.nn.Module``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from gai_meta.errors import ModelBuildError

__all__ = [
    "get_backbone",
    "get_model_family",
    "known_backbones",
    "known_model_families",
    "register_backbone",
    "register_model_family",
]

T = TypeVar("T")

# Built-ins are resolved lazily so that listing names never imports torch.
_BUILTIN_BACKBONES: dict[str, tuple[str, str]] = {
    "tiny_csp": ("gai_meta.models.gai_yolov12", "TinyCSPBackbone"),
}
_BUILTIN_FAMILIES: dict[str, tuple[str, str]] = {
    "gai_yolov12": ("gai_meta.models.gai_yolov12", "build_gai_yolov12"),
}

_backbones: dict[str, Any] = {}
_families: dict[str, Any] = {}


def _register(table: dict[str, Any], kind: str, name: str) -> Callable[[T], T]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} name must be a non-empty string, got {name!r}")

    def decorate(obj: T) -> T:
        table[name] = obj
        return obj

    return decorate


def register_backbone(name: str) -> Callable[[T], T]:
    """Class decorator: make ``model.backbone: <name>`` build this backbone class.

    Registering an existing name replaces it (last registration wins).
    """
    return _register(_backbones, "backbone", name)


def register_model_family(name: str) -> Callable[[T], T]:
    """Function decorator: register a ``(GaiYoloConfig) -> nn.Module`` builder as a family."""
    return _register(_families, "model family", name)


def known_backbones() -> tuple[str, ...]:
    """Sorted names accepted as ``model.backbone`` (built-in and registered); imports no torch."""
    return tuple(sorted(set(_BUILTIN_BACKBONES) | set(_backbones)))


def known_model_families() -> tuple[str, ...]:
    """Sorted names of the model families ``build_model`` can build; imports no torch."""
    return tuple(sorted(set(_BUILTIN_FAMILIES) | set(_families)))


def _lookup(
    table: dict[str, Any], builtins: dict[str, tuple[str, str]], kind: str, name: str
) -> Any:
    if name in table:
        return table[name]
    if name in builtins:
        module_name, attr = builtins[name]
        # Importing the module runs its decorators, which fill ``table``.
        obj = getattr(importlib.import_module(module_name), attr)
        table.setdefault(name, obj)
        return table[name]
    known = ", ".join(sorted(set(builtins) | set(table)))
    raise ModelBuildError(f"unknown {kind} {name!r}; known: {known}")


def get_backbone(name: str) -> Any:
    """The backbone class registered as ``name``; ModelBuildError naming the known ones if none."""
    return _lookup(_backbones, _BUILTIN_BACKBONES, "backbone", name)


def get_model_family(name: str) -> Any:
    """The builder registered as ``name``; ModelBuildError naming the known ones if none."""
    return _lookup(_families, _BUILTIN_FAMILIES, "model family", name)
