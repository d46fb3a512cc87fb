"""From a loaded model to the metadata records: probe -> account -> records -> files.

``introspect`` runs the dummy forward and the accounting; ``build_summary`` and
``build_parameters`` turn the result into the records of ``model_summary.json`` and
``model_parameters.json``; ``write_metadata`` writes every file at once, atomically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.accounting import Account, account, group, mb, retype
from gai_meta.errors import ForwardError, UsageError
from gai_meta.inputs import InputSpec
from gai_meta.records import (
    BufferEntry,
    GroupEntry,
    InputEntry,
    LayerCallEntry,
    LayerDetail,
    ModelBundleMetadata,
    ModelParameters,
    ModelSummary,
    ModuleEntry,
    ShapeInfo,
    to_json,
)

if TYPE_CHECKING:
    from torch import nn

    from gai_meta.estimate_report import EstimateOptions, Estimates
    from gai_meta.probe import ProbeResult
    from gai_meta.sources import LoadedModel

__all__ = [
    "DEVICES",
    "Introspection",
    "SummarizeResult",
    "build_parameters",
    "build_summary",
    "introspect",
    "metadata_documents",
    "summarize",
    "write_metadata",
]

DEVICES = ("auto", "meta", "cpu", "cuda")

SUMMARY_FILE = "model_summary.json"
PARAMETERS_FILE = "model_parameters.json"
EXPERIMENT_FILE = "experiment_config.json"
DATALOADER_FILE = "dataloader_config_snapshot.json"


@dataclasses.dataclass
class Introspection:
    """Everything learned about one model: its module, accounting and probe result."""

    loaded: LoadedModel
    model: nn.Module
    account: Account
    probe: ProbeResult | None
    input_shape: tuple[int, ...] | None
    device: str
    notes: list[str]
    inputs: tuple[InputSpec, ...] | None = None


def _input_dtype(model: nn.Module) -> Any:
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _run_probe(model: nn.Module, specs: Sequence[InputSpec], device: str) -> ProbeResult:
    from gai_meta.inputs import make_inputs
    from gai_meta.probe import probe

    args, kwargs = make_inputs(specs, _model_device(model, device), _input_dtype(model))
    return probe(model, args, kwargs)


def _model_device(model: nn.Module, requested: str) -> str:
    """Where the model's tensors are (formats that cannot go to meta stay on the cpu)."""
    for t in [*model.parameters(), *model.buffers()]:
        return str(t.device)
    return requested


NO_INPUT_NOTE = (
    "no input is known for this model, so output_shapes is null; pass --input-shape D0,D1,... "
    "(one float tensor) or --input NAME=D0,D1,...[:DTYPE] (e.g. --input input_ids=1,16:int64)"
)


def _specs(
    inputs: Sequence[InputSpec] | None, input_shape: tuple[int, ...] | None, loaded: LoadedModel
) -> tuple[InputSpec, ...] | None:
    if inputs:
        return tuple(inputs)
    if input_shape is not None:
        return (InputSpec(None, tuple(input_shape)),)
    if loaded.inputs:
        return loaded.inputs
    if loaded.input_shape is not None:
        return (InputSpec(None, loaded.input_shape),)
    return None


AUTO_CPU_MAX_BYTES = 256 * 2**20
# Activations grow with the input: a huge dummy input goes to the meta device even for a small
# model (a 1x3x100000x100000 image would need 120 GB on the CPU).
AUTO_CPU_MAX_INPUT_BYTES = 64 * 2**20


def _input_bytes(specs: Sequence[InputSpec]) -> int:
    import math

    return sum(8 * math.prod(s.shape) for s in specs)  # 8: the widest common dtype


def _tensor_bytes(model: nn.Module) -> int:
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _free_memory() -> int | None:
    """Available physical memory in bytes, where the platform says."""
    import os

    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _meta_specific(err: BaseException) -> bool:
    """Whether a failure on the meta device is one the real device would not have."""
    cause = err.__cause__ or err
    text = str(cause).lower()
    return isinstance(cause, NotImplementedError) or "meta" in text or "data-dependent" in text


def _check_device(device: str) -> None:
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UsageError(f"--device '{device}' is not one of {', '.join(DEVICES)} (or cuda:N)")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available here; use --device auto")


def introspect(
    loaded: LoadedModel,
    *,
    input_shape: tuple[int, ...] | None = None,
    device: str = "auto",
    run_forward: bool = True,
    inputs: Sequence[InputSpec] | None = None,
) -> Introspection:
    """Build the model, run the dummy forward (when an input is known) and account for it.

    ``inputs`` (``--input``) or ``input_shape`` (``--input-shape``) override the inputs the
    source knows. ``device="auto"`` runs small models (weights up to 256 MiB, inputs up to 64
    MiB) on the CPU and larger ones on the meta device (no weights allocated, exact shapes), falling back to the CPU
    only when the model does something the meta device cannot (data-dependent ops). The device
    never changes a count.
    """
    _check_device(device)
    specs = _specs(inputs, input_shape, loaded)
    shape = specs[0].shape if specs and len(specs) == 1 else None
    notes = list(loaded.notes)
    explicit = bool(inputs) or input_shape is not None
    if not loaded.runnable or (loaded.static_probe is not None and not explicit):
        # Nothing to run: counts only (a bare state dict), or shapes the format kept (.pt2).
        run_forward = False
    first = device
    model = loaded.build("meta" if device == "auto" else device)
    if device == "auto":
        first = "meta"
        # The meta device allocates nothing but its first use imports ~2 s of torch internals;
        # a real forward is cheaper for small models.
        if (
            run_forward
            and specs is not None
            and _tensor_bytes(model) <= AUTO_CPU_MAX_BYTES
            and _input_bytes(specs) <= AUTO_CPU_MAX_INPUT_BYTES
        ):
            first = "cpu"
            model = loaded.build("cpu")
    result = loaded.static_probe if loaded.runnable and not explicit else None
    used = first
    if not run_forward:
        pass
    elif specs is not None:
        used = _model_device(model, first)
        try:
            result = _run_probe(model, specs, first)
        except ForwardError as err:
            if device != "auto" or first != "meta" or not _meta_specific(err):
                raise
            need, free = _tensor_bytes(model), _free_memory()
            if free is not None and need > free // 2:
                raise ForwardError(
                    f"{err.message}; the meta device cannot run this model and its weights "
                    f"({need / 2**30:.1f} GiB) are too big for a cpu fallback ({free / 2**30:.1f} "
                    "GiB free); pass --device cpu to force it, or drop --input for counts only"
                ) from err
            notes.append(f"the meta device could not run this model ({err.message}); ran on cpu")
            used = "cpu"
            model = loaded.build("cpu")
            result = _run_probe(model, specs, "cpu")
    elif loaded.runnable:
        notes.append(NO_INPUT_NOTE)
    acc = account(model)
    if loaded.module_types:
        acc = retype(acc, loaded.module_types)
    return Introspection(
        loaded=loaded,
        model=model,
        account=acc,
        probe=result,
        input_shape=shape,
        device=result.device if result is loaded.static_probe and result else used,
        notes=notes,
        inputs=specs,
    )


def _layer_details(intro: Introspection) -> list[LayerDetail]:
    first_output: dict[str, list[int] | None] = {}
    calls: dict[str, int] = {}
    for call in intro.probe.calls if intro.probe else []:
        calls[call.name] = calls.get(call.name, 0) + 1
        if call.name not in first_output:
            first_output[call.name] = call.output_shapes[0] if call.output_shapes else None
    return [
        LayerDetail(
            name=name,
            type=intro.account.module_types.get(name, "?"),
            parameters=sum(p.numel for p in params),
            trainable=sum(p.numel for p in params if p.requires_grad),
            output_shape=first_output.get(name),
            calls=calls.get(name, 0),
        )
        for name, params in intro.account.by_module().items()
    ]


def _first_call(per_module: dict[str, int] | None, name: str, call: int) -> int | None:
    if per_module is None:
        return None
    return per_module.get(name, 0) if call == 1 else 0


def _layers(intro: Introspection, est: Estimates | None = None) -> list[LayerCallEntry]:
    own = {name: sum(p.numel for p in ps) for name, ps in intro.account.by_module().items()}
    flops = est.compute.per_module if est is not None and est.compute is not None else None
    saved = est.memory.per_module if est is not None and est.memory is not None else None
    seen: dict[str, int] = {}
    entries = []
    for call in intro.probe.calls if intro.probe else []:
        n = seen[call.name] = seen.get(call.name, 0) + 1
        entries.append(
            LayerCallEntry(
                name=call.name,
                type=call.type,
                depth=call.depth,
                call=n,
                output_shapes=call.output_shapes,
                parameters=own.get(call.name, 0) if n == 1 else 0,
                flops=_first_call(flops, call.name, n),
                activation_bytes=_first_call(saved, call.name, n),
            )
        )
    return entries


def _bundle(intro: Introspection) -> ModelBundleMetadata:
    cfg = intro.loaded.model_config
    if cfg is None:
        return ModelBundleMetadata(
            model_name=None,
            backbone=None,
            num_classes=None,
            num_parameters=intro.account.total,
            anchors=None,
            strides=None,
            input_size=list(intro.input_shape[-2:]) if intro.input_shape else None,
        )
    return ModelBundleMetadata(
        model_name=cfg.name,
        backbone=cfg.backbone,
        num_classes=cfg.num_classes,
        num_parameters=intro.account.total,
        anchors=[[list(a) for a in g] for g in cfg.anchors],
        strides=list(cfg.strides),
        input_size=list(cfg.input_size),
    )


def _settings(intro: Introspection) -> dict[str, Any]:
    from gai_meta.config import training_settings

    cfg = intro.loaded.config
    return training_settings(cfg)


def _source(intro: Introspection) -> dict[str, Any]:
    loaded = intro.loaded
    out: dict[str, Any] = {"path": loaded.source, "kind": loaded.kind}
    if loaded.config is not None and loaded.config.path is not None:
        out["config"] = str(loaded.config.path)
    if loaded.checkpoint is not None:
        ck = loaded.checkpoint
        out["checkpoint"] = {
            "format": ck.format,
            "state_dict_key": ck.state_dict_key,
            "epoch": ck.epoch,
            "train_loss": ck.train_loss,
            "val_loss": ck.val_loss,
            **ck.extra,
        }
    return out


def build_summary(intro: Introspection, est: Estimates | None = None) -> ModelSummary:
    """The record of ``model_summary.json`` (``compute``/``memory_estimate`` from ``est``)."""
    acc = intro.account
    backbone = getattr(intro.model, "backbone", None)
    settings = _settings(intro)
    float_dtype = str(_input_dtype(intro.model)).removeprefix("torch.")
    return ModelSummary(
        model_architecture=intro.loaded.architecture or type(intro.model).__name__,
        backbone_type=type(backbone).__name__ if backbone is not None else None,
        total_parameters=acc.total,
        trainable_parameters=acc.trainable,
        non_trainable_parameters=acc.non_trainable,
        parameter_size_mb=mb(acc.parameter_bytes),
        parameter_bytes=acc.parameter_bytes,
        total_buffers=acc.buffer_numel,
        buffer_size_mb=mb(acc.buffer_bytes),
        buffer_bytes=acc.buffer_bytes,
        input_shape=list(intro.input_shape) if intro.input_shape else None,
        output_shapes=intro.probe.output_shapes if intro.probe else None,
        output_structure=intro.probe.output_structure if intro.probe else None,
        layer_details=_layer_details(intro),
        layers=_layers(intro, est),
        model_bundle_metadata=_bundle(intro),
        device=settings.get("device"),
        optimizer=settings.get("optimizer"),
        scheduler=settings.get("scheduler"),
        learning_rate=settings.get("learning_rate"),
        weight_decay=settings.get("weight_decay"),
        probe_device=intro.device if intro.probe else None,
        source=_source(intro),
        notes=intro.notes + (est.notes if est is not None else []),
        inputs=[InputEntry(**s.to_json(float_dtype)) for s in intro.inputs]
        if intro.inputs
        else None,
        compute=est.compute.to_json() if est is not None and est.compute is not None else None,
        memory_estimate=(
            est.memory.to_json() if est is not None and est.memory is not None else None
        ),
    )


def _group_entries(acc: Account, by: str) -> dict[str, GroupEntry]:
    return {
        g.name: GroupEntry(
            count=g.count,
            tensors=g.tensors,
            total_params=g.total_params,
            trainable_params=g.trainable_params,
            bytes=g.bytes,
        )
        for g in group(acc, by)
    }


def build_parameters(acc: Account) -> ModelParameters:
    """The record of ``model_parameters.json`` (modules and groups by direct ownership)."""
    modules = {
        name: ModuleEntry(
            type=params[0].module_type,
            total_params=sum(p.numel for p in params),
            trainable_params=sum(p.numel for p in params if p.requires_grad),
            shape_info=[
                ShapeInfo(
                    name=p.name,
                    shape=list(p.shape),
                    numel=p.numel,
                    requires_grad=p.requires_grad,
                    dtype=p.dtype,
                    bytes=p.bytes,
                    tied_to=list(p.aliases),
                )
                for p in params
            ],
        )
        for name, params in acc.by_module().items()
    }
    return ModelParameters(
        total_parameters=acc.total,
        trainable_parameters=acc.trainable,
        non_trainable_parameters=acc.non_trainable,
        parameter_bytes=acc.parameter_bytes,
        modules=modules,
        parameter_groups=_group_entries(acc, "type"),
        dtypes=_group_entries(acc, "dtype"),
        total_buffers=acc.buffer_numel,
        buffer_bytes=acc.buffer_bytes,
        buffers=[
            BufferEntry(
                b.name, b.module_type, list(b.shape), b.numel, b.dtype, b.bytes, b.persistent
            )
            for b in acc.buffers
        ],
    )


def metadata_documents(intro: Introspection, est: Estimates | None = None) -> dict[str, Any]:
    """File name -> JSON document for every metadata file this introspection yields."""
    docs: dict[str, Any] = {
        SUMMARY_FILE: to_json(build_summary(intro, est)),
        PARAMETERS_FILE: to_json(build_parameters(intro.account)),
    }
    cfg = intro.loaded.config
    if cfg is not None:
        from gai_meta.config import dataloader_snapshot, experiment_config_document

        ck = intro.loaded.checkpoint
        docs[EXPERIMENT_FILE] = experiment_config_document(cfg, checkpoint=ck.path if ck else None)
        docs[DATALOADER_FILE] = dataloader_snapshot(cfg)
    if intro.loaded.experiment_dir is not None:
        from gai_meta.history import HISTORY_FILE, experiment_history

        history, notes = experiment_history(intro.loaded.experiment_dir)
        if history is not None:
            docs[HISTORY_FILE] = history
        docs[SUMMARY_FILE]["notes"].extend(notes)
    return docs


def default_out_dir(loaded: LoadedModel) -> Path:
    """Where metadata goes by default: the checkpoint's experiment, the config's artifact dir."""
    if loaded.experiment_dir is not None:
        return loaded.experiment_dir
    if loaded.config is not None:
        from gai_meta.config import resolve_artifact_dir

        return Path(resolve_artifact_dir(loaded.config))
    return Path(loaded.source).resolve().parent


def write_metadata(out_dir: Path, documents: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``documents`` into ``out_dir/metadata/``, all or none."""
    from gai_meta.atomic import write_json_files

    return write_json_files(Path(out_dir) / "metadata", documents)


@dataclasses.dataclass
class SummarizeResult:
    """What ``summarize`` did: the introspection, the documents and where they were written."""

    introspection: Introspection
    documents: dict[str, Any]
    out_dir: Path
    written: dict[str, Path]


def load_and_introspect(
    source: str | Path,
    *,
    config: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: str = "auto",
    trust_checkpoint: bool = False,
    run_forward: bool = True,
    inputs: Sequence[InputSpec] | None = None,
) -> Introspection:
    """Load ``source`` (path or factory) and introspect it; see :func:`introspect`."""
    from gai_meta.sources import LoadOptions, load_source

    options = LoadOptions(config=config or None, trust=trust_checkpoint)
    return introspect(
        load_source(source, options),
        input_shape=input_shape,
        device=device,
        run_forward=run_forward,
        inputs=inputs,
    )


def summarize(
    source: str | Path,
    *,
    config: str | Path | None = None,
    out: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    device: str = "auto",
    trust_checkpoint: bool = False,
    write: bool = True,
    inputs: Sequence[InputSpec] | None = None,
    estimates: EstimateOptions | None = None,
    with_estimates: bool = True,
) -> SummarizeResult:
    """Introspect ``source`` and write its metadata files into ``out/metadata/``.

    Example::

        result = summarize("fixtures/example_config.yaml", out="runs/example")
        result.documents["model_summary.json"]["total_parameters"]  # 485340

    ``estimates`` sets batch size, optimizer, dtype and AMP of ``memory_estimate`` (defaults:
    from the config, else the input; see :mod:`gai_meta.estimate_report`). ``with_estimates=False``
    leaves ``compute`` and ``memory_estimate`` null: torch's fake-tensor machinery that they need
    costs ~1.2 s of imports on first use, more than the whole summary of a small model.
    """
    intro = load_and_introspect(
        source,
        config=config,
        input_shape=input_shape,
        device=device,
        trust_checkpoint=trust_checkpoint,
        inputs=inputs,
    )
    est = None
    if with_estimates:
        from gai_meta.estimate_report import EstimateOptions, run_estimates

        est = run_estimates(intro, estimates or EstimateOptions())
    else:
        intro.notes.append("compute and memory estimates were not asked for (--no-estimates)")
    documents = metadata_documents(intro, est)
    out_dir = Path(out) if out is not None else default_out_dir(intro.loaded)
    written = write_metadata(out_dir, documents) if write else {}
    return SummarizeResult(intro, documents, out_dir, written)
