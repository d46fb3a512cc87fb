"""A GAI-YOLOv12 YAML config as a model source: the model is built from its ``model`` section."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gai_meta.errors import UsageError
from gai_meta.sources import LoadedModel, LoadOptions, SourceFormat, register_format

if TYPE_CHECKING:
    from torch import nn

_YAML_SUFFIXES = (".yaml", ".yml")


def _is_yaml(path: Path, head: bytes) -> bool:
    if path.suffix.lower() in _YAML_SUFFIXES:
        return True
    # By content: text whose top level looks like a mapping with a model section.
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return any(line.startswith("model:") for line in text.splitlines())


def load_yaml_config(path: Path, options: LoadOptions) -> LoadedModel:
    from gai_meta import models
    from gai_meta.config import load_config, require_model_section

    if options.config is not None and Path(options.config).resolve() != path.resolve():
        raise UsageError(
            f"SOURCE {path} is already a config; pass either a config as SOURCE or --config with a "
            "checkpoint, not both"
        )
    config = load_config(path)
    model_cfg = models.model_config_from_mapping(require_model_section(config), path=path)

    def build(device: str) -> nn.Module:
        model = models.build_model(model_cfg, device=device)
        models.apply_freezing(
            model, freeze_backbone=model_cfg.freeze_backbone, freeze_neck=model_cfg.freeze_neck
        )
        return model

    return LoadedModel(
        source=str(path),
        kind="config",
        build=build,
        config=config,
        model_config=model_cfg,
        input_shape=(1, model_cfg.input_channels, *model_cfg.input_size),
    )


register_format(SourceFormat("yaml-config", _is_yaml, load_yaml_config))
