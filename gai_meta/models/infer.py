"""Read a GAI-YOLOv12 architecture back from a state dict's keys and shapes.

Only ``.shape`` of each value is used, except the ``_anchors_i`` buffers whose values are the
anchors. What a state dict cannot tell (``input_size``, ``strides``, the model name) gets the
training system's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gai_meta.errors import ConfigError, ModelBuildError
from gai_meta.models.config import DEFAULT_MODEL_NAME, GaiYoloConfig, default_strides

__all__ = ["infer_config_from_state_dict", "strip_data_parallel_prefix"]

_STAGE_ANY = re.compile(r"backbone\.stages\.(\d+)\..*")
_HEAD_INDEX = re.compile(r"heads\.(\d+)\..*")
_HEAD_ANY = re.compile(r"heads\.\d+\.block\.")
_ANCHORS = re.compile(r"_anchors_(\d+)")
_MAX_LISTED = 5


def strip_data_parallel_prefix(state_dict: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop the ``module.`` prefix (DataParallel/DDP) when every key has it; else return as is."""
    if state_dict and all(isinstance(k, str) and k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def _shape(state_dict: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = state_dict.get(key)
    shape = getattr(value, "shape", None)
    if shape is None:
        found = "missing" if value is None else type(value).__name__
        raise ModelBuildError(
            f"GAI-YOLOv12 state dict: {key} is {found}, expected a tensor; "
            "the checkpoint is incomplete or not from the training system"
        )
    return tuple(int(d) for d in shape)


def _indices(keys: list[str], pattern: re.Pattern[str], what: str) -> int:
    found = sorted({int(m.group(1)) for k in keys if (m := pattern.fullmatch(k))})
    if found != list(range(len(found))):
        raise ModelBuildError(
            f"GAI-YOLOv12 state dict: {what} indices {found} are not 0..{len(found) - 1}; "
            "the checkpoint is incomplete or was edited"
        )
    return len(found)


def _anchor_values(value: Any, key: str) -> tuple[tuple[float, float], ...]:
    if getattr(value, "is_meta", False):
        raise ModelBuildError(
            f"GAI-YOLOv12 state dict: {key} is a meta tensor without values; "
            "load the checkpoint with real tensors to read its anchors"
        )
    rows = value.detach().float().cpu().tolist()
    return tuple((float(w), float(h)) for w, h in rows)


def infer_config_from_state_dict(state_dict: Mapping[str, Any]) -> GaiYoloConfig | None:
    """The GaiYoloConfig whose model has exactly this state dict's keys and shapes.

    Returns None when the keys are not a GAI-YOLOv12 state dict (no
    ``backbone.stages.0.0.block.0.weight`` together with ``heads.*`` or ``_anchors_*`` keys).
    Raises ModelBuildError when they are one but do not fit together (missing stages, head
    widths that disagree, a head output not divisible by its anchor count, stray keys...).
    ``input_size`` is (640, 640) and ``strides`` the defaults for the number of heads. A
    ``module.`` (DataParallel) prefix on every key is accepted.
    """
    state_dict = strip_data_parallel_prefix(state_dict)
    keys = [k for k in state_dict if isinstance(k, str)]
    if "backbone.stages.0.0.block.0.weight" not in state_dict or not any(
        _HEAD_ANY.match(k) or _ANCHORS.fullmatch(k) for k in keys
    ):
        return None

    depth = _indices(keys, _STAGE_ANY, "backbone stage")
    num_heads = _indices(keys, _HEAD_INDEX, "head")
    num_groups = _indices(keys, _ANCHORS, "_anchors_i buffer")
    if num_heads != num_groups or num_groups == 0:
        raise ModelBuildError(
            f"GAI-YOLOv12 state dict: {num_heads} heads but {num_groups} _anchors_i buffers; "
            "each head needs its anchor buffer"
        )

    stem = _shape(state_dict, "backbone.stages.0.0.block.0.weight")
    if len(stem) != 4:
        raise ModelBuildError(
            f"GAI-YOLOv12 state dict: backbone.stages.0.0.block.0.weight has shape {list(stem)}, "
            "expected a 4-d conv weight (out, in, k, k)"
        )
    base_channels, input_channels = stem[0], stem[1]
    for i in range(1, depth):
        _shape(state_dict, f"backbone.stages.{i}.0.block.0.weight")  # present and a tensor
    hidden_channels = _shape(state_dict, "heads.0.block.0.weight")[0]

    anchors: list[tuple[tuple[float, float], ...]] = []
    num_classes: int | None = None
    for i in range(num_groups):
        key = f"_anchors_{i}"
        a_shape = _shape(state_dict, key)
        if len(a_shape) != 2 or a_shape[1] != 2 or a_shape[0] < 1:
            raise ModelBuildError(
                f"GAI-YOLOv12 state dict: {key} has shape {list(a_shape)}, expected (A, 2)"
            )
        num_anchors = a_shape[0]
        out_channels = _shape(state_dict, f"heads.{i}.block.6.weight")[0]
        if out_channels % num_anchors or out_channels // num_anchors <= 5:
            raise ModelBuildError(
                f"GAI-YOLOv12 state dict: heads.{i}.block.6.weight has {out_channels} output "
                f"channels, not {num_anchors} anchors x (num_classes + 5) with num_classes >= 1"
            )
        head_classes = out_channels // num_anchors - 5
        if num_classes is not None and head_classes != num_classes:
            raise ModelBuildError(
                f"GAI-YOLOv12 state dict: head {i} predicts {head_classes} classes but head 0 "
                f"predicts {num_classes}; the heads must agree"
            )
        num_classes = head_classes
        anchors.append(_anchor_values(state_dict[key], key))
    assert num_classes is not None  # num_groups >= 1 was checked above

    try:
        cfg = GaiYoloConfig(
            num_classes=num_classes,
            name=DEFAULT_MODEL_NAME,
            input_channels=input_channels,
            base_channels=base_channels,
            depth=depth,
            hidden_channels=hidden_channels,
            anchors=tuple(anchors),
            strides=default_strides(num_groups),
        )
    except ConfigError as err:
        raise ModelBuildError(f"GAI-YOLOv12 state dict: inconsistent architecture: {err}") from err
    _check_against_model(state_dict, cfg)
    return cfg


def _check_against_model(state_dict: Mapping[str, Any], cfg: GaiYoloConfig) -> None:
    """Every key and shape must be what the inferred config builds (built on meta: no memory)."""
    from gai_meta.models.build import build_model  # torch only when a state dict is inferred

    expected = {k: tuple(v.shape) for k, v in build_model(cfg, device="meta").state_dict().items()}
    problems: list[str] = []
    for key, shape in expected.items():
        if key not in state_dict:
            # BatchNorm fills a missing num_batches_tracked itself when loading.
            if not key.endswith("num_batches_tracked"):
                problems.append(f"missing {key} {list(shape)}")
        else:
            found = tuple(int(d) for d in getattr(state_dict[key], "shape", ()))
            if found != shape:
                problems.append(f"{key} has {list(found)}, expected {list(shape)}")
    problems.extend(f"unexpected {k}" for k in state_dict if k not in expected)
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED])
        more = f" (+{len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise ModelBuildError(
            f"GAI-YOLOv12 state dict does not fit the architecture read from it "
            f"(depth {cfg.depth}, base_channels {cfg.base_channels}, hidden_channels "
            f"{cfg.hidden_channels}, {cfg.num_classes} classes): {listed}{more}"
        )
