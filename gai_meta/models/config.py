"""The typed model config of a GAI-YOLOv12 detector and its parsing from a YAML ``model`` section.

Torch-free: importing this module (or calling :func:`model_config_from_mapping`) never imports
torch. Defaults follow the training system (``shared/reference/gai-yolov12.md``); every invalid
value raises :class:`~gai_meta.errors.ConfigError` with one line naming the key, the value found
and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

from gai_meta.errors import ConfigError
from gai_meta.models.registry import known_backbones, known_model_families

__all__ = [
    "DEFAULT_ANCHORS",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_STRIDES",
    "Anchors",
    "GaiYoloConfig",
    "default_strides",
    "model_config_from_mapping",
]

Anchors = tuple[tuple[tuple[float, float], ...], ...]

DEFAULT_MODEL_NAME = "gai-yolo12"
DEFAULT_ANCHORS: Anchors = (
    ((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)),
    ((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)),
    ((116.0, 90.0), (156.0, 198.0), (373.0, 326.0)),
)
DEFAULT_STRIDES: tuple[int, ...] = (8, 16, 32)


def default_strides(num_groups: int) -> tuple[int, ...]:
    """The training system's default strides ``[8, 16, 32]`` cut to ``num_groups``.

    Beyond three groups the reference says nothing; we keep doubling (64, 128, ...), the
    stride each further stride-2 stage would have, rather than silently dropping heads.

    >>> default_strides(2), default_strides(4)
    ((8, 16), (8, 16, 32, 64))
    """
    return tuple(8 * 2**i for i in range(num_groups))


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value).replace("\n", " ")


def _positive_int_error(key: str, value: Any, fix: str) -> ConfigError:
    return ConfigError(f"{key}: expected a positive integer, found {_fmt(value)}; {fix}")


@dataclass(frozen=True)
class GaiYoloConfig:
    """Everything needed to build a GAI-YOLOv12 model (plus the config's freezing/fine-tuning keys).

    Construct it from YAML with :func:`model_config_from_mapping`, from a checkpoint with
    :func:`gai_meta.models.infer_config_from_state_dict`, or directly; ``__post_init__`` checks
    the value constraints either way.

    >>> cfg = GaiYoloConfig(num_classes=10)
    >>> cfg.depth, cfg.strides, cfg.anchors_per_group
    (3, (8, 16, 32), (3, 3, 3))
    """

    num_classes: int
    name: str = DEFAULT_MODEL_NAME
    input_size: tuple[int, int] = (640, 640)
    input_channels: int = 3
    backbone: str = "tiny_csp"
    base_channels: int = 64
    depth: int = 3
    hidden_channels: int = 128
    anchors: Anchors = DEFAULT_ANCHORS
    strides: tuple[int, ...] = DEFAULT_STRIDES
    freeze_backbone: bool = False
    freeze_neck: bool = False
    pretrained: bool | None = None
    checkpoint_path: str | None = None
    freeze_until_epoch: int | None = None
    backbone_lr_multiplier: float | None = None
    neck_lr_multiplier: float | None = None
    #: Registry key of the builder (:func:`gai_meta.models.register_model_family`). Not a
    #: training-system YAML key, so it is never read from a config file.
    family: str = "gai_yolov12"
    #: Keys of the ``model`` section this config does not model (kept for provenance only).
    extra_keys: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_values(self)
        # Direct construction may pass lists or int anchors; store one canonical, hashable form
        # so configs compare equal however they were made.
        object.__setattr__(self, "input_size", tuple(self.input_size))
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(
            self,
            "anchors",
            tuple(tuple((float(w), float(h)) for w, h in g) for g in self.anchors),
        )

    @property
    def num_anchor_groups(self) -> int:
        """Number of detection heads (one per anchor group)."""
        return len(self.anchors)

    @property
    def anchors_per_group(self) -> tuple[int, ...]:
        """Number of anchors in each group (A of each head)."""
        return tuple(len(g) for g in self.anchors)

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of each backbone stage (``base_channels * 2**i`` for ``tiny_csp``)."""
        return tuple(self.base_channels * 2**i for i in range(self.depth))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists instead of tuples), e.g. for ``model_bundle_metadata``."""
        return {
            "name": self.name,
            "family": self.family,
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "input_channels": self.input_channels,
            "backbone": self.backbone,
            "backbone_params": {"base_channels": self.base_channels, "depth": self.depth},
            "head": {"hidden_channels": self.hidden_channels},
            "anchors": [[list(a) for a in g] for g in self.anchors],
            "strides": list(self.strides),
            "freeze_backbone": self.freeze_backbone,
            "freeze_neck": self.freeze_neck,
            "pretrained": self.pretrained,
            "checkpoint_path": self.checkpoint_path,
            "freeze_until_epoch": self.freeze_until_epoch,
            "backbone_lr_multiplier": self.backbone_lr_multiplier,
            "neck_lr_multiplier": self.neck_lr_multiplier,
        }


def _check_values(cfg: GaiYoloConfig) -> None:
    """Value constraints shared by every way a config is made (types are the parser's job)."""
    for key, value, fix in (
        ("model.num_classes", cfg.num_classes, "set it to the number of object classes, e.g. 10"),
        ("model.input_channels", cfg.input_channels, "use 3 for RGB images"),
        ("model.backbone_params.base_channels", cfg.base_channels, "use e.g. 32, 64 or 128"),
        ("model.backbone_params.depth", cfg.depth, "use at least 1 stage, e.g. 3"),
        ("model.head.hidden_channels", cfg.hidden_channels, "use e.g. 128 or 256"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _positive_int_error(key, value, fix)
    if len(cfg.input_size) != 2 or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in cfg.input_size
    ):
        raise ConfigError(
            f"model.input_size: expected [H, W] with two positive integers, found "
            f"{list(cfg.input_size)}; write e.g. input_size: [640, 640]"
        )
    if cfg.backbone not in known_backbones():
        raise ConfigError(
            f"model.backbone: unknown backbone {cfg.backbone!r}; use one of: "
            f"{', '.join(known_backbones())}"
        )
    if cfg.family not in known_model_families():
        raise ConfigError(
            f"model family {cfg.family!r} is unknown; use one of: "
            f"{', '.join(known_model_families())}"
        )
    if not cfg.anchors or any(not g for g in cfg.anchors):
        raise ConfigError(
            f"model.anchors: expected at least one non-empty group of [w, h] pairs, found "
            f"{_anchors_repr(cfg.anchors)}; write e.g. anchors: [[[10, 13], [16, 30]]]"
        )
    for g in cfg.anchors:
        for pair in g:
            if len(pair) != 2 or not all(_is_positive_number(v) for v in pair):
                raise ConfigError(
                    f"model.anchors: every anchor must be [w, h] with two positive numbers, "
                    f"found {list(pair)}; write e.g. [10, 13]"
                )
    if len(cfg.anchors) > cfg.depth:
        raise ConfigError(
            f"model.anchors: {len(cfg.anchors)} anchor groups but the backbone has only "
            f"{cfg.depth} stages (model.backbone_params.depth); use at most {cfg.depth} "
            f"groups or raise depth to {len(cfg.anchors)}"
        )
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in cfg.strides):
        raise ConfigError(
            f"model.strides: expected positive integers, found {list(cfg.strides)}; "
            f"write e.g. strides: {list(default_strides(len(cfg.anchors)))}"
        )
    if len(cfg.strides) != len(cfg.anchors):
        raise ConfigError(
            f"model.strides: {len(cfg.strides)} strides {list(cfg.strides)} for "
            f"{len(cfg.anchors)} anchor groups; give one stride per anchor group, e.g. "
            f"strides: {list(default_strides(len(cfg.anchors)))}, or leave strides out"
        )
    if not isinstance(cfg.name, str) or not cfg.name:
        raise ConfigError(f"model.name: expected a non-empty string, found {_fmt(cfg.name)}")


def _anchors_repr(anchors: Any) -> str:
    try:
        return str([[list(a) for a in g] for g in anchors])
    except TypeError:
        return _fmt(anchors)


def _is_positive_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) and v > 0


# --------------------------------------------------------------------------- parsing


def _get_int(section: Mapping[str, Any], name: str, key: str, default: int, fix: str) -> int:
    value = section.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _positive_int_error(key, value, fix)
    return value


def _get_bool(section: Mapping[str, Any], name: str, default: bool | None) -> bool | None:
    value = section.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(
            f"model.{name}: expected true or false, found {_fmt(value)}; "
            f"write {name}: true or {name}: false"
        )
    return value


def _get_subsection(section: Mapping[str, Any], name: str, example: str) -> Mapping[str, Any]:
    value = section.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"model.{name}: expected a mapping, found {_fmt(value)}; write e.g. {example}"
        )
    return value


def _is_seq(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _parse_input_size(value: Any) -> tuple[int, int]:
    if value is None:
        return (640, 640)
    if (
        not _is_seq(value)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise ConfigError(
            f"model.input_size: expected [H, W] with two positive integers, found "
            f"{_fmt(value)}; write e.g. input_size: [640, 640]"
        )
    return (value[0], value[1])


def _parse_anchors(value: Any) -> Anchors:
    if value is None:
        return DEFAULT_ANCHORS
    fix = (
        "write a list of groups of [w, h] pairs, "
        "e.g. anchors: [[[10, 13], [16, 30]], [[30, 61], [62, 45]]]"
    )
    if not _is_seq(value) or not value:
        raise ConfigError(
            f"model.anchors: expected a non-empty list of groups, found {_fmt(value)}; {fix}"
        )
    groups: list[tuple[tuple[float, float], ...]] = []
    for i, group in enumerate(value):
        if not _is_seq(group) or not group:
            raise ConfigError(
                f"model.anchors[{i}]: expected a non-empty list of [w, h] pairs, found "
                f"{_fmt(group)}; {fix}"
            )
        pairs: list[tuple[float, float]] = []
        for j, pair in enumerate(group):
            if not _is_seq(pair) or len(pair) != 2 or not all(_is_positive_number(v) for v in pair):
                raise ConfigError(
                    f"model.anchors[{i}][{j}]: expected [w, h] with two positive numbers, "
                    f"found {_fmt(pair)}; {fix}"
                )
            pairs.append((float(pair[0]), float(pair[1])))
        groups.append(tuple(pairs))
    return tuple(groups)


def _parse_strides(value: Any, num_groups: int) -> tuple[int, ...]:
    if value is None:
        return default_strides(num_groups)
    if (
        not _is_seq(value)
        or not value
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in value)
    ):
        raise ConfigError(
            f"model.strides: expected a list of positive integers, found {_fmt(value)}; "
            f"write e.g. strides: {list(default_strides(num_groups))}"
        )
    return tuple(value)


def _parse_optional(section: Mapping[str, Any], name: str, kind: str) -> Any:
    value = section.get(name)
    if value is None:
        return None
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"model.{name}: expected a string, found {_fmt(value)}")
        return value
    if kind == "epoch":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"model.{name}: expected a whole number of epochs >= 0, found {_fmt(value)}; "
                f"write e.g. {name}: 10"
            )
        return value
    # kind == "multiplier"
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(
            f"model.{name}: expected a number >= 0, found {_fmt(value)}; write e.g. {name}: 0.1"
        )
    return float(value)


_KNOWN_KEYS = frozenset(
    {
        "name", "pretrained", "num_classes", "input_size", "input_channels", "backbone",
        "backbone_params", "head", "anchors", "strides", "checkpoint_path", "freeze_backbone",
        "freeze_neck", "freeze_until_epoch", "backbone_lr_multiplier", "neck_lr_multiplier",
    }
)  # fmt: skip


def model_config_from_mapping(
    model_section: Mapping[str, Any], *, path: str | PathLike[str] | None = None
) -> GaiYoloConfig:
    """Validate a YAML ``model`` section and apply the training system's defaults.

    Raises ConfigError (prefixed with ``path`` when given) naming the key, the value found and
    the fix. Unknown keys are ignored, as the training system ignores them (listed in
    ``extra_keys``).

    >>> cfg = model_config_from_mapping({"num_classes": 10, "backbone_params": {"depth": 2},
    ...     "anchors": [[[10, 13], [16, 30]], [[30, 61], [62, 45]]]})
    >>> cfg.strides, cfg.base_channels
    ((8, 16), 64)
    """
    try:
        return _from_mapping(model_section)
    except ConfigError as err:
        if path is None:
            raise
        raise ConfigError(err.message, path=path) from err


def _from_mapping(section: Mapping[str, Any]) -> GaiYoloConfig:
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"model: expected a mapping of model settings, found {_fmt(section)}; "
            f"write e.g. model: {{num_classes: 10}}"
        )
    if section.get("num_classes") is None:
        raise ConfigError(
            "model.num_classes is missing; set it to the number of object classes, "
            "e.g. num_classes: 10"
        )
    num_classes = _get_int(
        section,
        "num_classes",
        "model.num_classes",
        0,
        "set it to the number of object classes, e.g. 10",
    )
    name = section.get("name")
    if name is None:
        name = DEFAULT_MODEL_NAME
    elif not isinstance(name, str) or not name:
        raise ConfigError(
            f"model.name: expected a non-empty string, found {_fmt(name)}; "
            f'write e.g. name: "{DEFAULT_MODEL_NAME}"'
        )
    backbone = section.get("backbone")
    if backbone is None:
        backbone = "tiny_csp"
    if not isinstance(backbone, str) or backbone not in known_backbones():
        raise ConfigError(
            f"model.backbone: unknown backbone {_fmt(backbone)}; use one of: "
            f"{', '.join(known_backbones())}"
        )
    bparams = _get_subsection(
        section, "backbone_params", "backbone_params: {base_channels: 64, depth: 3}"
    )
    head = _get_subsection(section, "head", "head: {hidden_channels: 128}")
    anchors = _parse_anchors(section.get("anchors"))
    depth = _get_int(
        bparams, "depth", "model.backbone_params.depth", 3, "use at least 1 stage, e.g. 3"
    )
    if section.get("anchors") is None and depth < len(DEFAULT_ANCHORS):
        raise ConfigError(
            f"model.anchors: not set, and the {len(DEFAULT_ANCHORS)} default anchor groups need "
            f"{len(DEFAULT_ANCHORS)} backbone stages but model.backbone_params.depth is {depth}; "
            f"set model.anchors with at most {depth} groups, e.g. "
            f"anchors: {[[[int(v) for v in a] for a in g] for g in DEFAULT_ANCHORS[-depth:]]}"
        )
    return GaiYoloConfig(
        num_classes=num_classes,
        name=name,
        input_size=_parse_input_size(section.get("input_size")),
        input_channels=_get_int(
            section, "input_channels", "model.input_channels", 3, "use 3 for RGB images"
        ),
        backbone=backbone,
        base_channels=_get_int(
            bparams,
            "base_channels",
            "model.backbone_params.base_channels",
            64,
            "use e.g. 32, 64 or 128",
        ),
        depth=depth,
        hidden_channels=_get_int(
            head, "hidden_channels", "model.head.hidden_channels", 128, "use e.g. 128 or 256"
        ),
        anchors=anchors,
        strides=_parse_strides(section.get("strides"), len(anchors)),
        freeze_backbone=bool(_get_bool(section, "freeze_backbone", False)),
        freeze_neck=bool(_get_bool(section, "freeze_neck", False)),
        pretrained=_get_bool(section, "pretrained", None),
        checkpoint_path=_parse_optional(section, "checkpoint_path", "str"),
        freeze_until_epoch=_parse_optional(section, "freeze_until_epoch", "epoch"),
        backbone_lr_multiplier=_parse_optional(section, "backbone_lr_multiplier", "multiplier"),
        neck_lr_multiplier=_parse_optional(section, "neck_lr_multiplier", "multiplier"),
        extra_keys=tuple(sorted(str(k) for k in section if k not in _KNOWN_KEYS)),
    )
