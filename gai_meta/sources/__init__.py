"""Model sources: a path (or factory) -> :class:`LoadedModel`.

Formats are detected by content, not by extension; each format is a :class:`SourceFormat` in
:data:`FORMATS`, tried in order. The safety gates live here: checkpoints are read with
``torch.load(weights_only=True)``, and formats that execute code on load are refused unless the
caller passes ``trust=True`` (``--trust-checkpoint``).

This module imports no torch; the loaders import it when they run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.errors import CheckpointError, SourceError
from gai_meta.inputs import InputSpec

if TYPE_CHECKING:
    from torch import nn

    from gai_meta.config import LoadedConfig
    from gai_meta.models import GaiYoloConfig
    from gai_meta.probe import ProbeResult

__all__ = [
    "FORMATS",
    "CheckpointInfo",
    "LoadOptions",
    "LoadedModel",
    "SourceFormat",
    "load_source",
    "read_head",
    "register_format",
]

HEAD_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How to load a source: the options of ``summarize``/``params`` that concern loading."""

    config: Path | str | None = None  # a YAML config or a package.module:factory spec
    trust: bool = False


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a training checkpoint says about itself, besides its weights."""

    path: Path
    format: str
    epoch: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    state_dict_key: str | None = None  # where the weights were found ("model_state_dict", ...)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class LoadedModel:
    """A model ready to be built on a device, with where it came from.

    ``build(device)`` returns the module on ``device``; ``"meta"`` allocates no weights. It may be
    called more than once (the probe falls back from meta to cpu for data-dependent models).
    ``inputs`` are the dummy inputs the source itself knows (a config's input size, the example
    inputs stored in a ``.pt2``); ``runnable=False`` marks a module that has no forward (a state
    dict gai-meta cannot build: counts only); ``static_probe`` holds per-layer shapes a format
    keeps (``.pt2`` graphs), used when no input is given; ``module_types`` overrides class names
    (TorchScript and exported modules keep the original names apart from their own classes).
    """

    source: str
    kind: str
    build: Callable[[str], nn.Module]
    config: LoadedConfig | None = None
    model_config: GaiYoloConfig | None = None
    input_shape: tuple[int, ...] | None = None
    checkpoint: CheckpointInfo | None = None
    experiment_dir: Path | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    inputs: tuple[InputSpec, ...] | None = None
    architecture: str | None = None
    runnable: bool = True
    static_probe: ProbeResult | None = None
    module_types: dict[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class SourceFormat:
    """A format: ``sniff(path, head)`` says whether the file is of it; ``load`` reads it."""

    name: str
    sniff: Callable[[Path, bytes], bool]
    load: Callable[[Path, LoadOptions], LoadedModel]


FORMATS: list[SourceFormat] = []


def register_format(fmt: SourceFormat) -> SourceFormat:
    FORMATS.append(fmt)
    return fmt


def read_head(path: Path) -> bytes:
    """The first bytes of ``path``, with the failures of a bad path turned into SourceErrors."""
    if not path.exists():
        raise SourceError("no such file; check the path", path=path)
    if path.is_dir():
        raise SourceError(
            "is a directory, not a model file; pass a checkpoint or config file", path=path
        )
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as err:
        raise SourceError(f"cannot read: {err.strerror or err}", path=path) from err
    if not head:
        raise CheckpointError("the file is empty; pass a checkpoint or config file", path=path)
    return head


def load_source(source: str | os.PathLike[str], options: LoadOptions | None = None) -> LoadedModel:
    """Detect the format of ``source`` by its content and load it.

    Example::

        loaded = load_source("fixtures/example_config.yaml")
        model = loaded.build("meta")
    """
    options = options or LoadOptions()
    from gai_meta.sources import factory

    if factory.is_factory_spec(source):
        return factory.load_factory_source(str(source), options)
    path = Path(source)
    head = read_head(path)
    for fmt in _formats():
        if fmt.sniff(path, head):
            return fmt.load(path, options)
    raise CheckpointError(
        f"not a model source gai-meta can read ({_describe(head)}); pass a PyTorch checkpoint "
        "(torch.save, .safetensors, TorchScript, .pt2), a YAML config or package.module:factory",
        path=path,
    )


def _formats() -> list[SourceFormat]:
    # Importing the loaders registers them; they import torch only when they load.
    from gai_meta.sources import checkpoint, safetensors_format, yaml_config  # noqa: F401

    return FORMATS


def _describe(head: bytes) -> str:
    known = {
        b"\x89PNG": "a PNG image",
        b"\xff\xd8\xff": "a JPEG image",
        b"%PDF": "a PDF document",
        b"\x1f\x8b": "a gzip archive",
        b"GIF8": "a GIF image",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary content"
    return "text that is not a YAML config with a model section"
