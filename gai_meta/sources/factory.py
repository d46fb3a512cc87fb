"""Factories: ``package.module:callable`` returning an ``nn.Module``, as SOURCE or in a config.

A factory is imported from the current directory or ``PYTHONPATH`` (the current directory is put
on ``sys.path`` first, as ``python -m`` does). It is called under ``with torch.device(device)``,
so on the meta device it allocates no weights as long as it creates its tensors the usual way.
A YAML config names one as ``model: {_target_: "pkg.mod:callable", ...}``; the other keys of the
``model`` section are passed as keyword arguments.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.errors import ModelBuildError, SourceError
from gai_meta.sources import LoadedModel, LoadOptions

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "TARGET_KEY",
    "build_with_factory",
    "check_config_target",
    "is_factory_spec",
    "load_factory_source",
    "resolve",
]

TARGET_KEY = "_target_"
_IDENT = r"[A-Za-z_]\w*"
_SPEC = re.compile(rf"^{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*$")


def is_factory_spec(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` reads as ``package.module:callable`` rather than a file path."""
    text = os.fspath(source)
    return bool(_SPEC.match(text)) and not Path(text).exists()


# Callables that load code or pickles by themselves: a config file naming one could run code
# that no model factory needs. The standard library is refused as a whole (no model factory
# lives there; os.system, subprocess.run, builtins.exec do).
_CODE_LOADERS = (
    "torch.load",
    "torch.serialization.",
    "torch.jit.",
    "torch.export.",
    "torch.hub.",
    "torch.package.",
    "torch.utils.cpp_extension.",
    "numpy.load",
    "pandas.read_pickle",
    "dill.",
    "joblib.",
    "cloudpickle.",
)


def check_config_target(
    target: str, kwargs: Mapping[str, Any], *, path: str | os.PathLike[str] | None
) -> None:
    """Refuse a config ``_target_`` that would run code beyond building a model.

    A command-line factory is the user's own choice; a config file is data that may come from
    anywhere, so its ``_target_`` may not name the standard library, a code or pickle loader,
    nor pass ``trust_remote_code`` / ``weights_only: false``, unless ``--trust-checkpoint``.
    """
    from gai_meta.errors import UnsafeCheckpointError

    module, _, attr = target.partition(":")
    dotted = f"{module}.{attr}"
    top = module.split(".")[0]
    stdlib = top in getattr(sys, "stdlib_module_names", ()) or top == "builtins"
    loader = any(dotted == p.rstrip(".") or dotted.startswith(p) for p in _CODE_LOADERS)
    unsafe_kwargs = bool(kwargs.get("trust_remote_code")) or kwargs.get("weights_only") is False
    if stdlib or loader or unsafe_kwargs:
        what = (
            "a standard-library callable"
            if stdlib
            else "a function that loads code or pickles"
            if loader
            else "arguments that let it run code from files"
        )
        raise UnsafeCheckpointError(
            f"model._target_ '{target}' is {what}, not a model factory; a config may run such "
            "code only if you trust its origin: rerun with --trust-checkpoint",
            path=path,
        )


def resolve(spec: str) -> Callable[..., Any]:
    """Import ``package.module:callable`` and return the callable; SourceError when it cannot."""
    if not _SPEC.match(spec):
        raise SourceError(
            f"factory '{spec}' is not of the form package.module:callable (e.g. mypkg.models:make_net)"
        )
    module_name, _, qualname = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise SourceError(
            f"factory '{spec}': cannot import module '{module_name}' ({err}); run from the folder "
            "that holds it or add that folder to PYTHONPATH"
        ) from err
    except Exception as err:  # the module's own code failed while importing
        raise SourceError(
            f"factory '{spec}': importing '{module_name}' raised {_reason(err)}; fix the module"
        ) from err
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SourceError(
                f"factory '{spec}': module '{module_name}' has no attribute '{qualname}'; check "
                "the name after the colon"
            ) from None
    if not callable(obj):
        raise SourceError(
            f"factory '{spec}' is {_a(obj)}, not callable; name a function or class that returns "
            "a torch.nn.Module"
        )
    return obj  # type: ignore[no-any-return]


def build_with_factory(
    spec: str, fn: Callable[..., Any], kwargs: Mapping[str, Any], device: str
) -> nn.Module:
    """Call ``fn(**kwargs)`` with ``device`` as the default device; check it returns a module."""
    import torch

    try:
        with torch.device(device):
            model = fn(**kwargs)
    except Exception as err:
        raise ModelBuildError(
            f"factory '{spec}' raised {_reason(err)} when called on {device}; fix the factory or "
            "its arguments"
        ) from err
    if not isinstance(model, torch.nn.Module):
        raise ModelBuildError(
            f"factory '{spec}' returned {_a(model)}, expected a torch.nn.Module; return the model"
        )
    if device not in ("meta", "cpu"):
        model = model.to(device)
    return model


def _a(obj: Any) -> str:
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _reason(err: BaseException) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= 300 else text[:297] + "..."


def load_factory_source(
    spec: str,
    options: LoadOptions,
    kwargs: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """A factory as a source; with ``--config`` pointing at weights this is refused."""
    if options.config is not None:
        from gai_meta.errors import UsageError

        raise UsageError(
            f"SOURCE {spec} is a factory; --config is for checkpoints (pass the factory's "
            "arguments through a config's model section with _target_ instead)"
        )
    fn = resolve(spec)
    arguments = dict(kwargs or {})
    return LoadedModel(
        source=spec,
        kind="factory",
        build=lambda device: build_with_factory(spec, fn, arguments, device),
    )
