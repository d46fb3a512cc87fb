"""The Python API for training loops: write an in-memory model's metadata files.

``gai_meta.generate_metadata`` is exported lazily from the package; this module imports torch
only inside the function, and the training loop's model is inspected where it already lives
(its own device, its own ``requires_grad`` flags), never copied or rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.config import LoadedConfig, load_config, load_config_mapping
from gai_meta.errors import GaiMetaError, UsageError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["generate_metadata"]

_OPTIONS = ("device",)


def generate_metadata(
    model: nn.Module,
    artifact_dir: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | str | os.PathLike[str] | LoadedConfig | None = None,
    input_shape: tuple[int, ...] | list[int] | None = None,
    **options: Any,
) -> dict[str, Path]:
    """Write the metadata files of ``model`` into ``{artifact_dir}/metadata/``; return their paths.

    ``config`` (a dict, a YAML path or a LoadedConfig) adds ``experiment_config.json`` and
    ``dataloader_config_snapshot.json`` and fills the training fields of ``model_summary.json``;
    its ``model.input_size`` gives the dummy input when ``input_shape`` is not passed. The dummy
    forward runs on the model's own device (``device=`` overrides the probe device name) in eval
    mode without gradients, and the model's train/eval mode is restored afterwards.
    ``training_history.json`` is left alone: :func:`gai_meta.record_epoch` owns it.

    Example::

        paths = gai_meta.generate_metadata(model, "experiments/run-1", config=cfg_dict)
        paths["model_summary.json"]  # Path("experiments/run-1/metadata/model_summary.json")
    """
    import torch

    from gai_meta.sources import LoadedModel
    from gai_meta.summary import introspect, metadata_documents, write_metadata

    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise UsageError(
            f"generate_metadata: unknown option(s) {', '.join(unknown)}; "
            f"supported: {', '.join(_OPTIONS)}"
        )
    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            f"generate_metadata: model is a {type(model).__name__}, expected a torch.nn.Module"
        )
    cfg = _config(config)
    notes: list[str] = []
    model_cfg = _model_config(cfg, notes)
    shape = _shape(input_shape, model_cfg)
    device = options.get("device") or _device_of(model)

    def build(_device: str) -> nn.Module:
        return model  # the live model: never rebuilt, moved or refrozen

    loaded = LoadedModel(
        source=f"<in-memory {type(model).__name__}>",
        kind="module",
        build=build,
        config=cfg,
        model_config=model_cfg,
        input_shape=shape,
        notes=notes,
    )
    intro = introspect(loaded, input_shape=shape, device=device)
    return write_metadata(Path(artifact_dir), metadata_documents(intro))


def _config(
    config: Mapping[str, Any] | str | os.PathLike[str] | LoadedConfig | None,
) -> LoadedConfig | None:
    if config is None or isinstance(config, LoadedConfig):
        return config
    if isinstance(config, Mapping):
        return load_config_mapping(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise UsageError(
        f"generate_metadata: config is a {type(config).__name__}; pass a dict, the path of a "
        "YAML config or None"
    )


def _model_config(cfg: LoadedConfig | None, notes: list[str]) -> Any:
    if cfg is None or not cfg.has_section("model"):
        return None
    from gai_meta.models import model_config_from_mapping

    try:
        return model_config_from_mapping(cfg.section("model"), path=cfg.path)
    except GaiMetaError as err:
        # The live model is what gets measured; a model section gai-meta cannot read only
        # costs the bundle metadata and the default input shape.
        notes.append(f"model section not used: {err}")
        return None


def _shape(
    input_shape: tuple[int, ...] | list[int] | None, model_cfg: Any
) -> tuple[int, ...] | None:
    if input_shape is not None:
        shape = tuple(input_shape)
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            raise UsageError(
                f"generate_metadata: input_shape {input_shape!r} must be whole numbers >= 1, "
                "e.g. (1, 3, 640, 640)"
            )
        return shape
    if model_cfg is not None:
        return (1, model_cfg.input_channels, *model_cfg.input_size)
    return None


def _device_of(model: nn.Module) -> str:
    for tensor in (*model.parameters(), *model.buffers()):
        return str(tensor.device)
    return "cpu"
