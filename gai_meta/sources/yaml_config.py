"""A YAML config as a model source: the model is built from its ``model`` section.

The section is either GAI-YOLOv12's (``num_classes``, ``backbone``, ...) or names a factory with
``_target_: "package.module:callable"`` whose other keys are passed as keyword arguments.
"""

from __future__ import annotations

from pathlib import Path

from gai_meta.errors import UsageError
from gai_meta.sources import LoadedModel, LoadOptions, SourceFormat, register_format

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
    from gai_meta.config import load_config
    from gai_meta.sources.recipe import recipe_from_loaded_config

    if options.config is not None and Path(options.config).resolve() != path.resolve():
        raise UsageError(
            f"SOURCE {path} is already a config; pass either a config as SOURCE or --config with a "
            "checkpoint, not both"
        )
    recipe = recipe_from_loaded_config(load_config(path), trust=options.trust)
    inputs = recipe.inputs
    return LoadedModel(
        source=str(path),
        kind="config" if recipe.model_config is not None else "factory-config",
        build=recipe.build,
        config=recipe.config,
        model_config=recipe.model_config,
        input_shape=inputs[0].shape if inputs and len(inputs) == 1 else None,
        inputs=inputs,
    )


register_format(SourceFormat("yaml-config", _is_yaml, load_yaml_config))
