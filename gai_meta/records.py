"""Typed records of what the metadata files hold; JSON is made from them in one place.

Every document carries ``schema_version``; bump it when a field changes meaning or goes away
(adding fields keeps the version).
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "BufferEntry",
    "GroupEntry",
    "InputEntry",
    "LayerCallEntry",
    "LayerDetail",
    "ModelBundleMetadata",
    "ModelParameters",
    "ModelSummary",
    "ModuleEntry",
    "ShapeInfo",
    "to_json",
]

SCHEMA_VERSION = 1


def to_json(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict (``schema_version`` first for top-level documents)."""
    data: dict[str, Any] = dataclasses.asdict(record)
    if "schema_version" in data:
        data = {"schema_version": data.pop("schema_version"), **data}
    return data


@dataclasses.dataclass(frozen=True)
class LayerDetail:
    """A module that owns parameters directly; their ``parameters`` sum to the model total."""

    name: str
    type: str
    parameters: int
    trainable: int
    output_shape: list[int] | None
    calls: int


@dataclasses.dataclass(frozen=True)
class LayerCallEntry:
    """One module call of the dummy forward, in call order (the root is ``""``, depth 0).

    ``parameters`` counts the module's own parameters on its first call only (0 on repeats), so
    the column sums to the parameters of the modules that ran.
    """

    name: str
    type: str
    depth: int
    call: int
    output_shapes: list[list[int]]
    parameters: int
    # FLOPs and saved-for-backward bytes of every call of this module (children included),
    # on its first call, 0 on repeats like ``parameters``; None when not estimated.
    flops: int | None = None
    activation_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class InputEntry:
    """One dummy input of the forward pass: positional when ``name`` is null."""

    name: str | None
    shape: list[int]
    dtype: str


@dataclasses.dataclass(frozen=True)
class ModelBundleMetadata:
    model_name: str | None
    backbone: str | None
    num_classes: int | None
    num_parameters: int
    anchors: list[list[list[float]]] | None
    strides: list[int] | None
    input_size: list[int] | None


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """``model_summary.json``."""

    model_architecture: str
    backbone_type: str | None
    total_parameters: int
    trainable_parameters: int
    non_trainable_parameters: int
    parameter_size_mb: float
    parameter_bytes: int
    total_buffers: int
    buffer_size_mb: float
    buffer_bytes: int
    input_shape: list[int] | None
    output_shapes: list[list[int]] | None
    output_structure: Any
    layer_details: list[LayerDetail]
    layers: list[LayerCallEntry]
    model_bundle_metadata: ModelBundleMetadata
    device: str | None
    optimizer: str | None
    scheduler: str | None
    learning_rate: float | None
    weight_decay: float | None
    probe_device: str | None
    source: dict[str, Any]
    notes: list[str]
    inputs: list[InputEntry] | None = None
    compute: dict[str, Any] | None = None
    memory_estimate: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION


@dataclasses.dataclass(frozen=True)
class ShapeInfo:
    name: str
    shape: list[int]
    numel: int
    requires_grad: bool
    dtype: str
    bytes: int
    tied_to: list[str]


@dataclasses.dataclass(frozen=True)
class ModuleEntry:
    """A module that owns parameters directly, with those parameters."""

    type: str
    total_params: int
    trainable_params: int
    shape_info: list[ShapeInfo]


@dataclasses.dataclass(frozen=True)
class GroupEntry:
    count: int
    tensors: int
    total_params: int
    trainable_params: int
    bytes: int


@dataclasses.dataclass(frozen=True)
class BufferEntry:
    name: str
    module_type: str
    shape: list[int]
    numel: int
    dtype: str
    bytes: int
    persistent: bool


@dataclasses.dataclass(frozen=True)
class ModelParameters:
    """``model_parameters.json``."""

    total_parameters: int
    trainable_parameters: int
    non_trainable_parameters: int
    parameter_bytes: int
    modules: dict[str, ModuleEntry]
    parameter_groups: dict[str, GroupEntry]
    dtypes: dict[str, GroupEntry]
    total_buffers: int
    buffer_bytes: int
    buffers: list[BufferEntry]
    schema_version: int = SCHEMA_VERSION
