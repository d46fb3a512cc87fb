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
    StateDictMismatchError,
    UnsafeCheckpointError,
)
from gai_meta.sources import (
    CheckpointInfo,
    LoadedModel,
    LoadOptions,
    SourceFormat,
    register_format,
)

if TYPE_CHECKING:
    import torch

__all__ = ["extract_state_dict", "load_checkpoint_object", "torch_load"]

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
            return torch.load(path, map_location="cpu", weights_only=False)
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


def load_checkpoint_object(path: Path, options: LoadOptions) -> tuple[Any, CheckpointInfo]:
    """Load the raw object of a checkpoint and describe it."""
    obj = torch_load(path, trust=options.trust)
    info: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for key in ("epoch", "train_loss", "val_loss"):
            info[key] = _scalar(obj.get(key))
    epoch = info.get("epoch")
    return obj, CheckpointInfo(
        path=path,
        format="torch",
        epoch=int(epoch) if isinstance(epoch, (int, float)) else None,
        train_loss=info.get("train_loss"),
        val_loss=info.get("val_loss"),
    )


def _experiment_dir(path: Path) -> Path | None:
    parent = path.resolve().parent
    return parent.parent if parent.name == "checkpoints" else None


def load_torch_checkpoint(path: Path, options: LoadOptions) -> LoadedModel:
    import torch

    from gai_meta import models
    from gai_meta.config import load_config, require_model_section

    obj, info = load_checkpoint_object(path, options)
    exp_dir = _experiment_dir(path)
    if isinstance(obj, torch.nn.Module) and options.config is None:
        module = obj
        return LoadedModel(
            source=str(path),
            kind="pickled-module",
            build=lambda device: module.to(device) if device != "meta" else module,
            checkpoint=info,
            experiment_dir=exp_dir,
        )
    state_dict, key = extract_state_dict(obj, path)
    state_dict = dict(models.strip_data_parallel_prefix(state_dict))
    info = CheckpointInfo(**{**info.__dict__, "state_dict_key": key})
    config = None
    if options.config is not None:
        config = load_config(options.config)
        model_cfg = models.model_config_from_mapping(
            require_model_section(config), path=options.config
        )
    else:
        try:
            inferred = models.infer_config_from_state_dict(state_dict)
        except ModelBuildError as err:
            if err.path:
                raise
            raise ModelBuildError(
                f"{err.message}; pass --config to build the model", path=path
            ) from err
        if inferred is None:
            raise ModelBuildError(
                "the weights are not of an architecture gai-meta knows; pass --config with the "
                "model's config (or a factory) to build it",
                path=path,
            )
        model_cfg = inferred

    def build(device: str) -> torch.nn.Module:
        model = models.build_model(model_cfg, device="meta")
        check_strict(model, state_dict, path, options.config)
        weights = {k: v.to(device) if device == "meta" else v for k, v in state_dict.items()}
        if device not in ("meta", "cpu"):
            weights = {k: v.to(device) for k, v in weights.items()}
        model.load_state_dict(weights, strict=True, assign=True)
        models.apply_freezing(
            model, freeze_backbone=model_cfg.freeze_backbone, freeze_neck=model_cfg.freeze_neck
        )
        return model

    # Fail early (before any probing) when the weights do not fit the config.
    check_strict(models.build_model(model_cfg, device="meta"), state_dict, path, options.config)
    return LoadedModel(
        source=str(path),
        kind="checkpoint",
        build=build,
        config=config,
        model_config=model_cfg,
        input_shape=(1, model_cfg.input_channels, *model_cfg.input_size),
        checkpoint=info,
        experiment_dir=exp_dir,
    )


def check_strict(
    model: torch.nn.Module, state_dict: Mapping[str, Any], path: Path, config: Path | None
) -> None:
    """Raise StateDictMismatchError listing the first differing keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(getattr(v, "shape", ())) for k, v in state_dict.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} checkpoint {list(found[k])} vs model {list(expected[k])}"
        for k in expected
        if k in found and found[k] != expected[k]
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): {_first(shapes)}")
    against = f"the model built from {config}" if config else "the inferred model"
    raise StateDictMismatchError(
        f"weights do not load strictly into {against}: {'; '.join(parts)}; pass the config the "
        "checkpoint was trained with",
        path=path,
    )


def _first(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


register_format(SourceFormat("torch", _is_torch_file, load_torch_checkpoint))
