"""PyTorch checkpoints written by ``torch.save``: read safely, matched to an architecture.

Only ``torch.load(weights_only=True)`` is used unless the caller trusts the file; a pickle that
the safe loader refuses is never executed, and the refusal names ``--trust-checkpoint``.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.errors import (
    CheckpointError,
    ModelBuildError,
    UnsafeCheckpointError,
)
from gai_meta.sources import (
    CheckpointInfo,
    LoadedModel,
    LoadOptions,
    SourceFormat,
    register_format,
)
from gai_meta.sources.recipe import check_strict

if TYPE_CHECKING:
    import torch

__all__ = ["check_strict", "extract_state_dict", "load_checkpoint_object", "torch_load", "zip_kind"]

_ZIP_MAGIC = b"PK\x03\x04"
# Keys under which training code commonly stores the weights, most specific first.
STATE_DICT_KEYS = ("model_state_dict", "state_dict", "model", "ema", "model_ema", "net", "weights")
TRUST_HINT = "only if you trust its origin, rerun with --trust-checkpoint"


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return []


def zip_kind(path: Path) -> str | None:
    """'torch' for torch.save archives, 'torchscript', 'export' (.pt2), or None."""
    names = _zip_names(path)
    if not names:
        return None
    tails = {n.split("/", 1)[-1] for n in names}
    if any(t.startswith("models/") and t.endswith(".json") for t in tails) or any(
        t.startswith("serialized_exported_program") or t == "archive_format" for t in tails
    ):
        return "export"
    if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        return "torch"
    return None


def _is_torch_file(path: Path, head: bytes) -> bool:
    if head.startswith(_ZIP_MAGIC):
        # A zip that holds no torch archive (or a truncated one) still goes to the torch loader,
        # which explains what is wrong with it better than "unknown format".
        return True
    # Legacy (non-zip) torch.save files start with a pickle protocol opcode.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def torch_load(path: Path, *, trust: bool = False) -> Any:
    """``torch.load`` with weights_only (and mmap when the format allows), errors made clear."""
    import torch

    kind = zip_kind(path)
    if kind in ("torchscript", "export") and not trust:
        what = "a TorchScript archive" if kind == "torchscript" else "a torch.export (.pt2) archive"
        raise UnsafeCheckpointError(
            f"is {what}; loading it runs code stored in the file; {TRUST_HINT}", path=path
        )
    try:
        if trust:
            return _trusted_load(path)
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "torch")
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text or "weights_only" in text:
            found = _unsafe_global(text)
            raise UnsafeCheckpointError(
                f"holds pickled Python objects{found} that the safe loader refuses (it was not "
                f"executed); {TRUST_HINT}",
                path=path,
            ) from err
        raise CheckpointError(_corrupt(err), path=path) from err
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        AttributeError,
        KeyError,
        IndexError,
    ) as err:
        raise CheckpointError(_corrupt(err), path=path) from err
    except Exception as err:  # unpickling arbitrary bytes can raise nearly anything
        raise CheckpointError(_corrupt(err), path=path) from err


def _trusted_load(path: Path) -> Any:
    """``torch.load(weights_only=False)``: only behind ``--trust-checkpoint``."""
    import os
    import sys

    import torch

    # The pickled classes are imported by name, like a factory's module: from cwd or PYTHONPATH.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(
            f"the pickled model needs code that is not importable here ({err}); run from the "
            "folder that holds the model's code or add it to PYTHONPATH",
            path=path,
        ) from err


def _unsafe_global(text: str) -> str:
    # torch names the refused global as "Unsupported global: GLOBAL pkg.mod.Cls was not ..."
    marker = "GLOBAL "
    if marker in text:
        name = text.split(marker, 1)[1].split()[0]
        return f" ({name})"
    return ""


def _corrupt(err: BaseException) -> str:
    reason = " ".join(str(err).split())[:200] or type(err).__name__
    return (
        f"not a readable PyTorch checkpoint (truncated or corrupt?): {reason}; "
        "re-save it with torch.save or check the download"
    )


def extract_state_dict(obj: Any, path: Path) -> tuple[dict[str, Any], str | None]:
    """Find the state dict in a loaded checkpoint: (state dict, key it was under or None)."""
    import torch

    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and _is_state_dict(inner):
                return dict(inner), key
        if obj and _is_state_dict(obj):
            return dict(obj), None
    if isinstance(obj, torch.nn.Module):
        return dict(obj.state_dict()), None
    keys = ", ".join(sorted(map(str, obj))[:8]) if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"holds no model weights (found {keys or 'an empty dict'}); expected a state dict or a dict "
        f"with one of {', '.join(STATE_DICT_KEYS)}",
        path=path,
    )


def _is_state_dict(obj: Mapping[Any, Any]) -> bool:
    import torch

    tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
    # Some state dicts carry a few non-tensor extras (e.g. "_metadata"); most values are tensors.
    return bool(tensors) and all(isinstance(k, str) for k in obj) and len(tensors) >= len(obj) / 2


def _scalar(value: Any) -> Any:
    try:
        import torch

        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return value.item()
    except Exception:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def _lightning(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """Lightning's own metadata when ``obj`` is a Lightning checkpoint (by its keys)."""
    version = obj.get("pytorch-lightning_version") or obj.get("lightning_version")
    if version is None and not ("hyper_parameters" in obj and "global_step" in obj):
        return None
    out: dict[str, Any] = {"version": str(version) if version is not None else None}
    for key in ("epoch", "global_step"):
        out[key] = _scalar(obj.get(key))
    hp = obj.get("hyper_parameters")
    if isinstance(hp, Mapping):
        out["hyper_parameters"] = _plain(hp)
    out["other_keys"] = sorted(
        str(k)
        for k in obj
        if k not in ("state_dict", "hyper_parameters", "epoch", "global_step")
        and "version" not in str(k)
    )
    return out


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of hyper-parameters (tensors and objects become short strings)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if depth > 6:
        return repr(value)[:80]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    scalar = _scalar(value)
    return scalar if scalar is not None else repr(value)[:80]


def load_checkpoint_object(path: Path, options: LoadOptions) -> tuple[Any, CheckpointInfo]:
    """Load the raw object of a checkpoint and describe it."""
    obj = torch_load(path, trust=options.trust)
    info: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("epoch", "train_loss", "val_loss"):
            info[key] = _scalar(obj.get(key))
        lightning = _lightning(obj)
        if lightning is not None:
            extra["lightning"] = lightning
    epoch = info.get("epoch")
    return obj, CheckpointInfo(
        path=path,
        format="lightning" if extra else "torch",
        epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
        train_loss=info.get("train_loss"),
        val_loss=info.get("val_loss"),
        extra=extra,
    )


def _experiment_dir(path: Path) -> Path | None:
    parent = path.resolve().parent
    return parent.parent if parent.name == "checkpoints" else None


def _meta_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` whose tensors are meta (shapes, dtypes, ties and flags kept)."""
    import copy

    import torch

    memo: dict[int, Any] = {}
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) in memo:
            continue
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = (
            torch.nn.Parameter(meta, requires_grad=t.requires_grad)
            if isinstance(t, torch.nn.Parameter)
            else meta
        )
    return copy.deepcopy(module, memo)


def _pickled_module(path: Path, module: torch.nn.Module, info: CheckpointInfo) -> LoadedModel:
    def build(device: str) -> torch.nn.Module:
        if device == "meta":
            return _meta_copy(module)
        return module.to(device)

    return LoadedModel(
        source=str(path),
        kind="pickled-module",
        build=build,
        checkpoint=CheckpointInfo(**{**info.__dict__, "format": "pickled-module"}),
        experiment_dir=_experiment_dir(path),
    )


def _strip_common_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a first name component every key shares (Lightning's ``model.``, ``module.``)."""
    firsts = {k.split(".", 1)[0] for k in state_dict}
    if len(firsts) == 1 and all("." in k for k in state_dict):
        return {k.split(".", 1)[1]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_torch_checkpoint(path: Path, options: LoadOptions) -> LoadedModel:
    import torch

    from gai_meta import models
    from gai_meta.sources.recipe import gai_recipe, recipe_from_config, with_weights
    from gai_meta.sources.state_dict import state_dict_source

    kind = zip_kind(path)
    if kind in ("torchscript", "export") and options.trust:
        from gai_meta.sources import trusted

        loader = trusted.load_torchscript if kind == "torchscript" else trusted.load_exported
        return loader(path, options)
    obj, info = load_checkpoint_object(path, options)
    exp_dir = _experiment_dir(path)
    if isinstance(obj, torch.nn.Module) and options.config is None:
        return _pickled_module(path, obj, info)
    state_dict, key = extract_state_dict(obj, path)
    info = CheckpointInfo(**{**info.__dict__, "state_dict_key": key})
    if options.config is not None:
        return with_weights(
            recipe_from_config(options.config, trust=options.trust),
            state_dict,
            path=path,
            kind="checkpoint",
            checkpoint=info,
            experiment_dir=exp_dir,
        )
    inferred = None
    candidates = [dict(models.strip_data_parallel_prefix(state_dict))]
    stripped = _strip_common_prefix(state_dict)
    if stripped.keys() != candidates[0].keys():
        candidates.append(stripped)
    for weights in candidates:
        try:
            inferred = models.infer_config_from_state_dict(weights)
        except ModelBuildError as err:
            if err.path:
                raise
            raise ModelBuildError(
                f"{err.message}; pass --config to build the model", path=path
            ) from err
        if inferred is not None:
            break
    if inferred is None:
        return state_dict_source(
            state_dict, path=path, kind="state-dict", checkpoint=info, experiment_dir=exp_dir
        )
    return with_weights(
        gai_recipe(inferred, "the inferred model"),
        state_dict,
        path=path,
        kind="checkpoint",
        checkpoint=info,
        experiment_dir=exp_dir,
    )


register_format(SourceFormat("torch", _is_torch_file, load_torch_checkpoint))
