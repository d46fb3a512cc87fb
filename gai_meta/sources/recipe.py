"""How a model is made (a config or a factory) and how stored weights are put into it.

A :class:`ModelRecipe` builds a fresh model on any device; :func:`with_weights` turns a recipe
and a state dict into a :class:`LoadedModel` whose ``build(device)`` returns the model holding
those weights: on the meta device as meta copies (``load_state_dict(assign=True)``, nothing read),
elsewhere the checkpoint's own (memory-mapped) tensors, assigned without a copy. Key prefixes
such as Lightning's ``model.`` or DataParallel's ``module.`` are resolved against the model's
keys, and weights tied in the model stay tied (counted once).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.errors import ConfigError, SourceError, StateDictMismatchError
from gai_meta.inputs import InputSpec
from gai_meta.sources import CheckpointInfo, LoadedModel

if TYPE_CHECKING:
    import torch
    from torch import nn

    from gai_meta.config import LoadedConfig
    from gai_meta.models import GaiYoloConfig

__all__ = [
    "ModelRecipe",
    "check_strict",
    "gai_recipe",
    "recipe_from_config",
    "recipe_from_loaded_config",
    "resolve_prefix",
    "with_weights",
]


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
    """A way to build a model: ``build(device)`` returns a fresh one (random init, or meta)."""

    build: Callable[[str], nn.Module]
    label: str  # for messages: "the model built from config.yaml"
    config: LoadedConfig | None = None
    model_config: GaiYoloConfig | None = None
    inputs: tuple[InputSpec, ...] | None = None


def gai_recipe(
    model_cfg: GaiYoloConfig, label: str, config: LoadedConfig | None = None
) -> ModelRecipe:
    """A GAI-YOLOv12 config as a recipe (freezing applied as the training system does)."""

    def build(device: str) -> nn.Module:
        from gai_meta import models

        model = models.build_model(model_cfg, device=device)
        models.apply_freezing(
            model, freeze_backbone=model_cfg.freeze_backbone, freeze_neck=model_cfg.freeze_neck
        )
        return model

    shape = (1, model_cfg.input_channels, *model_cfg.input_size)
    return ModelRecipe(build, label, config, model_cfg, (InputSpec(None, shape),))


def recipe_from_loaded_config(config: LoadedConfig, *, trust: bool = False) -> ModelRecipe:
    """The recipe of a config's ``model`` section: ``_target_`` (a factory) or GAI-YOLOv12.

    A ``_target_`` that loads code or data by itself is refused unless ``trust`` (see
    :func:`gai_meta.sources.factory.check_config_target`).
    """
    from gai_meta import models
    from gai_meta.config import require_model_section
    from gai_meta.sources.factory import (
        TARGET_KEY,
        build_with_factory,
        check_config_target,
        resolve,
    )

    section = require_model_section(config)
    label = f"the model built from {config.path}" if config.path else "the configured model"
    target = section.get(TARGET_KEY)
    if target is None:
        model_cfg = models.model_config_from_mapping(section, path=config.path)
        return gai_recipe(model_cfg, label, config)
    if not isinstance(target, str):
        raise ConfigError(
            f"model.{TARGET_KEY} is {type(target).__name__}, expected a string like "
            "'package.module:callable'",
            path=config.path,
        )
    kwargs = {k: v for k, v in section.items() if k != TARGET_KEY}
    if not trust:
        check_config_target(target, kwargs, path=config.path)
    try:
        fn = resolve(target)
    except SourceError as err:
        raise SourceError(f"model.{TARGET_KEY}: {err.message}", path=config.path) from err
    return ModelRecipe(
        lambda device: build_with_factory(target, fn, kwargs, device),
        label,
        config,
    )


def recipe_from_config(config: Path | str, *, trust: bool = False) -> ModelRecipe:
    """``--config``: a YAML file, or a ``package.module:callable`` factory."""
    from gai_meta.config import load_config
    from gai_meta.sources.factory import build_with_factory, is_factory_spec, resolve

    text = os.fspath(config)
    if is_factory_spec(text):
        fn = resolve(text)
        return ModelRecipe(
            lambda device: build_with_factory(text, fn, {}, device), f"the model of factory {text}"
        )
    return recipe_from_loaded_config(load_config(config), trust=trust)


def resolve_prefix(
    expected: set[str], found: Mapping[str, Any]
) -> tuple[dict[str, Any], str, list[str]]:
    """Strip the key prefix (``model.``, ``module.``, ...) that makes ``found`` fit ``expected``.

    Returns (state dict with the prefix stripped, the prefix, keys outside it that were left
    out). Lightning modules keep their network under an attribute (``self.model``), so their
    ``state_dict`` reads ``model.layer.weight``; other attributes (losses, EMA copies) are left out.
    """
    if not found or expected <= found.keys():
        return dict(found), "", []
    counts: Counter[str] = Counter()
    for key in found:
        parts = key.split(".")
        for i in range(1, min(3, len(parts))):
            counts[".".join(parts[:i]) + "."] += 1

    def score(prefix: str) -> tuple[int, int]:
        n = len(prefix)
        stripped = {k[n:] for k in found if k.startswith(prefix)}
        return len(expected & stripped), -n

    candidates = ["", *(p for p, _ in counts.most_common(32))]
    best = max(candidates, key=score)
    if not best or score(best)[0] <= score("")[0]:
        return dict(found), "", []
    n = len(best)
    kept = {k[n:]: v for k, v in found.items() if k.startswith(best)}
    left = [k for k in found if not k.startswith(best)]
    return kept, best, left


def _tie_groups(model: nn.Module) -> list[list[str]]:
    """Names that share one tensor (tied weights), for every tensor that has more than one."""
    names: dict[int, list[str]] = {}
    for name, t in [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]:
        names.setdefault(id(t), []).append(name)
    return [group for group in names.values() if len(group) > 1]


def _retie(model: nn.Module, groups: list[list[str]]) -> None:
    # load_state_dict(assign=True) wraps each name's tensor in its own Parameter, so tied
    # weights would become two tensors (and be counted twice); point the aliases back at one.
    for group in groups:
        first = model.get_parameter(group[0]) if _is_param(model, group[0]) else None
        canonical = first if first is not None else model.get_buffer(group[0])
        for name in group[1:]:
            owner_name, _, leaf = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            if leaf in owner._parameters:
                owner._parameters[leaf] = canonical  # type: ignore[assignment]
            else:
                owner._buffers[leaf] = canonical


def _is_param(model: nn.Module, name: str) -> bool:
    owner_name, _, leaf = name.rpartition(".")
    return leaf in model.get_submodule(owner_name)._parameters


def check_strict(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    path: Path,
    label: str,
    *,
    fix: str | None = None,
) -> None:
    """Raise StateDictMismatchError listing the first differing keys and shapes.

    A key missing from ``state_dict`` is fine when it is tied to one that is present (files
    written by ``safetensors.torch.save_model`` keep one name of each tied tensor).
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    found = {k: tuple(getattr(v, "shape", ())) for k, v in state_dict.items()}
    tied = {
        name for group in _tie_groups(model) if any(n in found for n in group) for name in group
    }
    missing = [k for k in expected if k not in found and k not in tied]
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
    raise StateDictMismatchError(
        f"weights do not load strictly into {label}: {'; '.join(parts)}; "
        f"{fix or 'pass the config the checkpoint was trained with'}",
        path=path,
    )


def _first(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _has_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in [*model.parameters(), *model.buffers()])


def _load(
    model: nn.Module, weights: Mapping[str, torch.Tensor], groups: list[list[str]], device: str
) -> nn.Module:
    import torch

    data: dict[str, torch.Tensor] = {}
    for k, v in weights.items():
        if device == "meta":
            data[k] = torch.empty_like(v, device="meta")  # shape and dtype only; nothing read
        elif str(v.device) != device:
            data[k] = v.to(device)
        else:
            data[k] = v
    for group in groups:
        present = next((n for n in group if n in data), None)
        for name in group:
            if present is not None and name not in data:
                data[name] = data[present]
    own = model.state_dict(keep_vars=True)
    data = {k: v for k, v in data.items() if k in own}
    model.load_state_dict(data, strict=True, assign=True)
    _retie(model, groups)
    return model


def with_weights(
    recipe: ModelRecipe,
    state_dict: Mapping[str, Any],
    *,
    path: Path,
    kind: str,
    checkpoint: CheckpointInfo | None = None,
    experiment_dir: Path | None = None,
    fix: str | None = None,
) -> LoadedModel:
    """A model source: ``recipe``'s model holding the weights of ``state_dict`` (strictly)."""
    template = recipe.build("meta")
    expected = set(template.state_dict().keys())
    weights, prefix, left = resolve_prefix(expected, state_dict)
    check_strict(template, weights, path, recipe.label, fix=fix)
    groups = _tie_groups(template)
    notes = []
    if prefix:
        notes.append(
            f"weights found under the key prefix '{prefix}'"
            + (f"; {len(left)} other key(s) left out (e.g. {left[0]})" if left else "")
        )

    def build(device: str) -> nn.Module:
        model = _load(recipe.build("meta"), weights, groups, device)
        if device != "meta" and _has_meta(model):
            # Tensors the checkpoint does not hold (non-persistent buffers) stay meta when
            # built on meta; build on the device itself so they get their real values.
            model = _load(recipe.build(device), weights, groups, device)
        return model

    if checkpoint is not None and prefix:
        checkpoint.extra["key_prefix"] = prefix
    return LoadedModel(
        source=str(path),
        kind=kind,
        build=build,
        config=recipe.config,
        model_config=recipe.model_config,
        input_shape=recipe.inputs[0].shape if recipe.inputs and len(recipe.inputs) == 1 else None,
        inputs=recipe.inputs,
        checkpoint=checkpoint,
        experiment_dir=experiment_dir,
        notes=notes,
    )
