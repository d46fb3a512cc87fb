"""FLOPs and memory of a model's forward pass and of one training step, without real data.

Two pure functions over an ``nn.Module`` and example inputs:

* :func:`count_compute` counts forward FLOPs with PyTorch's own ``FlopCounterMode`` (so the
  numbers are PyTorch's by construction) and lists every operation that did arithmetic the
  counter has no formula for, instead of silently counting it as zero.
* :func:`estimate_memory` replays one training step (forward, loss, backward, ``optimizer.step``)
  and one no-grad forward on *fake* tensors (``FakeTensorMode``: shapes and dtypes, no data)
  at the requested batch size, and follows the bytes of every live tensor storage over time.
  Batch 64 at 640x640 costs no more time or memory than batch 1.

Memory model: a storage is counted from the op that creates it until Python frees it (a weak
reference finaliser), so the peak includes parameters, buffers, the input batch, saved
activations, gradients, optimizer state and every temporary an op returns. What it cannot see
is memory a kernel allocates and frees internally (oneDNN scratchpads and weight reorders),
allocator caching and fragmentation; ``docs/estimates.md`` gives the measured ratios.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.module_tracker import ModuleTracker

from gai_meta.errors import ForwardError, UsageError
from gai_meta.options import OPTIMIZER_NAMES

__all__ = [
    "OPTIMIZERS",
    "ComputeEstimate",
    "MemoryEstimate",
    "count_compute",
    "estimate_memory",
    "largest_batch_size",
]

OPTIMIZERS = OPTIMIZER_NAMES
"""Optimizer names :func:`estimate_memory` understands (``sgd`` uses ``momentum``)."""

_MB = 2**20
_aten = torch.ops.aten


# --------------------------------------------------------------------------------------------
# Records


@dataclasses.dataclass(frozen=True)
class ComputeEstimate:
    """Forward-pass compute at the example inputs.

    ``per_module`` maps a module's fully-qualified name to the FLOPs of every call into it
    (children included; ``""`` is the whole model). ``uncounted`` lists the aten ops that ran,
    do arithmetic, and have no FLOP formula (see :func:`count_compute`); ``uncounted_modules``
    maps each of them to the innermost modules it ran in.
    """

    flops: int
    macs: int
    per_module: dict[str, int]
    uncounted: list[str]
    uncounted_modules: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        """The ``compute`` object of model_summary.json."""
        return {
            "flops": self.flops,
            "macs": self.macs,
            "uncounted": [
                {"op": op, "modules": self.uncounted_modules.get(op, [])} for op in self.uncounted
            ],
        }


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Memory of one training step and of one no-grad forward, in MB (2**20 bytes, 2 decimals).

    ``activations_mb`` is what autograd keeps for backward (storages saved by the forward,
    parameters, buffers and the input excluded); ``per_module`` gives the same in bytes per
    module fully-qualified name (children included, ``""`` = total). ``training_peak_phase``
    says where the training peak falls: ``forward``, ``backward`` or ``optimizer``.

    ``training_peak_mb``/``inference_peak_mb`` (and ``*_peak_bytes``) are what a CPU process's
    resident memory reaches: every allocation of the step replayed through a model of glibc
    malloc, whose freed-but-resident heap blocks make RSS exceed live tensor memory.
    ``*_tensor_peak_mb`` are the peak of live tensor memory itself, what an allocator that caches
    nothing would need (the number for other allocators). docs/estimates.md compares both with
    measured steps.
    """

    batch_size: int
    dtype: str
    optimizer: str
    amp: bool
    amp_dtype: str | None
    parameters_mb: float
    buffers_mb: float
    input_mb: float
    activations_mb: float
    gradients_mb: float
    optimizer_state_mb: float
    inference_peak_mb: float
    training_peak_mb: float
    training_peak_phase: str
    inference_peak_bytes: int
    training_peak_bytes: int
    inference_tensor_peak_mb: float
    training_tensor_peak_mb: float
    per_module: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The ``memory_estimate`` object of model_summary.json (per-module bytes left out)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "per_module"
        }


# --------------------------------------------------------------------------------------------
# Compute

# Ops whose cost is linear in the elements they touch are left out of FLOPs by PyTorch's
# counter (and fvcore, and papers): only contractions (matmul, conv, attention) are counted.
# They are therefore "counted as zero by convention", not "uncounted". The rule:
#   * views and metadata ops (their schema returns an alias, nothing is computed);
#   * ops tagged ``pointwise`` (elementwise arithmetic and activations);
#   * the explicit list below: copies, factories, reductions, normalisation, pooling,
#     resampling, concatenation, indexing and losses: all linear in their elements.
# Every other op that ran without a formula is reported in ``uncounted``.
_LINEAR_COST_OPS = frozenset(
    {
        # copies and factories
        "aten._to_copy",
        "aten.clone",
        "aten.copy_",
        "aten.copy",
        "aten.contiguous",
        "aten.empty",
        "aten.empty_like",
        "aten.empty_strided",
        "aten.new_empty",
        "aten.new_empty_strided",
        "aten.zeros",
        "aten.zeros_like",
        "aten.new_zeros",
        "aten.ones",
        "aten.ones_like",
        "aten.new_ones",
        "aten.full",
        "aten.full_like",
        "aten.new_full",
        "aten.fill_",
        "aten.fill",
        "aten.zero_",
        "aten.arange",
        "aten.linspace",
        "aten.scalar_tensor",
        "aten.lift_fresh",
        "aten.lift_fresh_copy",
        "aten._local_scalar_dense",
        "aten.rand",
        "aten.randn",
        "aten.rand_like",
        "aten.randn_like",
        "aten.bernoulli",
        "aten.bernoulli_",
        "aten.native_dropout",
        "aten.repeat",
        "aten.tile",
        "aten.flip",
        "aten.roll",
        "aten.tril",
        "aten.triu",
        "aten.cat",
        "aten.stack",
        "aten.constant_pad_nd",
        "aten.reflection_pad2d",
        "aten.replication_pad2d",
        "aten.pad",
        "aten.masked_fill",
        "aten.masked_fill_",
        "aten.index",
        "aten.index_select",
        "aten.gather",
        "aten.scatter",
        "aten.scatter_add",
        "aten.embedding",
        "aten.one_hot",
        "aten.sort",
        "aten.topk",
        "aten.argmax",
        "aten.argmin",
        # reductions
        "aten.sum",
        "aten.mean",
        "aten.amax",
        "aten.amin",
        "aten.max",
        "aten.min",
        "aten.prod",
        "aten.var",
        "aten.var_mean",
        "aten.std",
        "aten.std_mean",
        "aten.norm",
        "aten.linalg_vector_norm",
        "aten.logsumexp",
        "aten.cumsum",
        "aten.all",
        "aten.any",
        # normalisation, softmax, pooling, resampling
        "aten.native_batch_norm",
        "aten._native_batch_norm_legit",
        "aten._native_batch_norm_legit_functional",
        "aten._native_batch_norm_legit_no_training",
        "aten.native_layer_norm",
        "aten.native_group_norm",
        "aten._fused_rms_norm",
        "aten._softmax",
        "aten._log_softmax",
        "aten.max_pool2d_with_indices",
        "aten.max_pool2d",
        "aten.avg_pool2d",
        "aten.adaptive_avg_pool2d",
        "aten._adaptive_avg_pool2d",
        "aten.adaptive_max_pool2d",
        "aten.max_pool1d",
        "aten.avg_pool1d",
        "aten.upsample_nearest2d",
        "aten.upsample_bilinear2d",
        "aten._upsample_nearest_exact2d",
        "aten.pixel_shuffle",
        "aten.pixel_unshuffle",
        "aten.mse_loss",
        "aten.nll_loss_forward",
        "aten.nll_loss2d_forward",
        "aten.binary_cross_entropy",
        "aten.binary_cross_entropy_with_logits",
    }
)


def _is_view_or_metadata(op: torch._ops.OpOverload) -> bool:
    schema = op._schema
    return (
        bool(schema.returns)
        and not schema.is_mutable
        and all(r.alias_info is not None for r in schema.returns)
    )


def _is_counted_as_zero(op: torch._ops.OpOverload) -> bool:
    name = str(op.overloadpacket)
    if name in _LINEAR_COST_OPS or name.startswith(("aten._foreach_", "prim.")):
        return True  # prim.* (device, layout queries) only describe tensors
    if torch.Tag.pointwise in op.tags:
        return True
    return _is_view_or_metadata(op)


class _OpRecorder(TorchDispatchMode):
    """Notes every op without a FLOP formula that is not linear-cost, and where it ran."""

    def __init__(self, registry: Mapping[Any, Any], tracker: ModuleTracker) -> None:
        super().__init__()
        self._registry = registry
        self._tracker = tracker
        self.uncounted: dict[str, set[str]] = {}

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        if (
            isinstance(func, torch._ops.OpOverload)
            and func.overloadpacket not in self._registry
            and not _is_counted_as_zero(func)
        ):
            where = max(self._tracker.parents, key=len)  # the innermost module
            self.uncounted.setdefault(str(func.overloadpacket), set()).add(where)
        return func(*args, **(kwargs or {}))


def _fqn_of_tracker_name(name: str, root_name: str) -> str:
    # ModuleTracker names modules "<RootClass>.child.grandchild"; the root gets "" like
    # named_modules(), and ops outside every module ("Global") belong to the root too.
    if name in ("Global", root_name):
        return ""
    return name[len(root_name) + 1 :] if name.startswith(root_name + ".") else name


def _count(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], *, fake: bool
) -> tuple[FlopCounterMode, _OpRecorder]:
    counter = FlopCounterMode(display=False)
    tracker = ModuleTracker()
    recorder = _OpRecorder(counter.flop_registry, tracker)
    with _preserve_modes(model):
        if not fake:
            with torch.no_grad(), counter, tracker, recorder:
                model(*args, **kwargs)
            return counter, recorder
        with FakeTensorMode(allow_non_fake_inputs=False):
            state, _, _, _, _ = _fake_state(model, None)
            batch = _batch_dim(args, kwargs)
            fargs, fkwargs = _rebatch((args, kwargs), batch, batch or 0, None)
            with torch.no_grad(), counter, tracker, recorder:
                torch.func.functional_call(model, state, fargs, fkwargs, strict=False)
    return counter, recorder


def count_compute(
    model: nn.Module, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None
) -> ComputeEstimate:
    """Count the forward FLOPs of ``model(*args, **kwargs)`` with ``torch.utils.flop_counter``.

    Runs one forward under ``torch.no_grad()`` on fake copies of the weights and inputs (shapes
    and dtypes only), so it costs no real compute whatever the model's device. MACs are FLOPs / 2: every op PyTorch's counter has a
    formula for is a multiply-accumulate contraction.

    Example::

        >>> est = count_compute(nn.Linear(4, 3), (torch.zeros(2, 4),))
        >>> est.flops  # 2 * batch 2 * in 4 * out 3
        48
    """
    kwargs = dict(kwargs or {})
    try:
        # FLOPs depend on shapes only: replay the forward on fake copies of the weights and
        # inputs, so a large model or input costs no real compute (the memory estimate pays for
        # the fake-tensor machinery anyway).
        counter, recorder = _count(model, args, kwargs, fake=True)
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as err:
        on_meta = any(t.is_meta for t in _tensors_in((args, kwargs)))
        if on_meta:
            raise ForwardError(
                f"forward pass for FLOP counting failed: {type(err).__name__}: {err}"
            ) from err
        try:  # data-dependent models cannot run on fake tensors: count a real forward
            counter, recorder = _count(model, args, kwargs, fake=False)
        except (RuntimeError, TypeError, ValueError, IndexError) as err2:
            raise ForwardError(
                f"forward pass for FLOP counting failed: {type(err2).__name__}: {err2}"
            ) from err2
    total = counter.get_total_flops()
    root_name = type(model).__name__
    per_module: dict[str, int] = {"": total}
    for name, by_op in counter.get_flop_counts().items():
        fqn = _fqn_of_tracker_name(name, root_name)
        if fqn:
            per_module[fqn] = per_module.get(fqn, 0) + sum(by_op.values())
    uncounted = sorted(recorder.uncounted)
    where = {
        op: sorted(_fqn_of_tracker_name(n, root_name) for n in recorder.uncounted[op])
        for op in uncounted
    }
    return ComputeEstimate(
        flops=total,
        macs=total // 2,
        per_module=per_module,
        uncounted=uncounted,
        uncounted_modules=where,
    )


# --------------------------------------------------------------------------------------------
# The training step, shared by the estimator and the real measurement (gai_meta._measure)


def _tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested outputs: tuples, lists, dicts and dataclasses alike."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _tensors_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors_in(v)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _tensors_in(getattr(obj, f.name))


def _scalar_loss(outputs: Any) -> torch.Tensor | None:
    """Sum of every differentiable output: a loss that adds no large temporaries."""
    loss: torch.Tensor | None = None
    for t in _tensors_in(outputs):
        if t.requires_grad and t.is_floating_point():
            part = t.sum().float()
            loss = part if loss is None else loss + part
    return loss


def _make_optimizer(
    name: str, params: list[torch.Tensor], *, momentum: float
) -> torch.optim.Optimizer | None:
    if not params:
        return None
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-3)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-3, momentum=momentum)
    raise UsageError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def _training_step(
    forward: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None,
    *,
    autocast_dtype: torch.dtype | None,
    mark: Callable[[str], None] = lambda phase: None,
) -> tuple[Any, torch.Tensor | None]:
    """One step as a training loop runs it; outputs and loss stay referenced through step()."""
    mark("forward")
    amp = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with amp:
        out = forward(*args, **kwargs)
        loss = _scalar_loss(out)
    mark("backward")
    if loss is not None:
        loss.backward()
    mark("optimizer")
    if optimizer is not None:
        optimizer.step()
    mark("end")
    return out, loss


def _inference_step(
    forward: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    autocast_dtype: torch.dtype | None,
) -> Any:
    amp = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with torch.no_grad(), amp:
        return forward(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Memory


class _LiveStorages(TorchDispatchMode):
    """Follows the bytes of every live tensor storage created while it is active.

    A storage is counted when an op first returns a tensor on it and uncounted when Python
    frees it. ``.item()`` on a fake tensor has no value to give; inside the optimizer (which
    reads its step counter that way) it answers 1, which only changes scalar hyper-parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self.phase = "setup"
        self.phase_peaks: dict[str, int] = {}
        self._refs: dict[int, tuple[weakref.ref[Any], int, int]] = {}
        self.allow_item = False
        # (event id, bytes) for an allocation, (event id, -1) for its free: the allocator replay
        self.events: list[tuple[int, int]] = []
        self._next_id = 0

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = id(storage)
        nbytes = int(storage.nbytes())
        known = self._refs.get(key)
        if known is not None:
            if known[1] != nbytes:  # resized in place: a new allocation replaces the old
                self.events.append((known[2], -1))
                eid = self._new_id()
                self.events.append((eid, nbytes))
                self.current += nbytes - known[1]
                self._refs[key] = (known[0], nbytes, eid)
                self._bump()
            return
        eid = self._new_id()
        ref = weakref.ref(storage, functools.partial(self._free, key))
        self._refs[key] = (ref, nbytes, eid)
        self.events.append((eid, nbytes))
        self.current += nbytes
        self._bump()

    def _free(self, key: int, _ref: object = None) -> None:
        entry = self._refs.pop(key, None)
        if entry is not None:
            self.current -= entry[1]
            self.events.append((entry[2], -1))

    def _bump(self) -> None:
        if self.current > self.peak:
            self.peak = self.current
        if self.current > self.phase_peaks.get(self.phase, 0):
            self.phase_peaks[self.phase] = self.current

    def mark(self, phase: str) -> None:
        self.phase = phase
        self._bump()

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        if func is _aten._local_scalar_dense.default and self.allow_item:
            return True if args[0].dtype == torch.bool else 1
        out = func(*args, **(kwargs or {}))
        first_output = len(self.events)
        for t in _tensors_in(out):
            self.track(t)
        workspace = _kernel_workspace(func, args, out)
        if workspace:
            # memory the kernel holds only while it runs: allocated before its outputs,
            # freed before it returns; it counts towards the peak and never stays live
            eid = self._new_id()
            self.events.insert(first_output, (eid, workspace))
            self.events.append((eid, -1))
            self.current += workspace
            self._bump()
            self.current -= workspace
        return out


def _dense_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _conv_uses_onednn(inp: torch.Tensor, weight: torch.Tensor, groups: int) -> bool:
    """Mirror of ``ConvParams::use_mkldnn`` (aten/src/ATen/native/Convolution.cpp) for CPU."""
    if inp.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if not torch.backends.mkldnn.enabled or inp.dim() != 4:
        return False
    n = inp.shape[0]
    return bool(
        groups > 1
        or (weight.shape[-1] > 3 and weight.shape[-2] > 3)
        or n > 1
        or inp.numel() > 20480
    )


def _kernel_workspace(func: Any, args: Sequence[Any], out: Any) -> int:
    """Bytes a CPU kernel allocates and frees inside one call, invisible to dispatch.

    Measured on this CPU build (oneDNN convolution; see docs/estimates.md): the forward
    holds a reorder buffer the size of the larger of its input and output; the backward holds
    one the size of the larger of grad_output and input, plus a second copy of grad_input.
    An expanded (stride-0) grad_output, as ``loss = out.sum()`` gives, is made dense twice.
    """
    if func is _aten.convolution.default:
        inp, weight = args[0], args[1]
        if not _conv_uses_onednn(inp, weight, int(args[8])):
            return 0
        return max(_dense_bytes(inp), _dense_bytes(out))
    if func is _aten.convolution_backward.default:
        grad_out, inp, weight = args[0], args[1], args[2]
        if not _conv_uses_onednn(inp, weight, int(args[9])):
            return 0
        grad_in = out[0] if isinstance(out, (tuple, list)) and out[0] is not None else None
        grad_in_bytes = _dense_bytes(grad_in) if grad_in is not None else 0
        g = _dense_bytes(grad_out)
        if grad_out.untyped_storage().nbytes() < g:  # expanded: materialised twice
            return 2 * g + grad_in_bytes
        return max(g, _dense_bytes(inp)) + grad_in_bytes
    return 0


class _SavedActivations:
    """Bytes autograd saves for backward, by the module whose forward saved them."""

    def __init__(self, model: nn.Module, exclude: set[int]) -> None:
        self._names = {id(m): name for name, m in reversed(list(model.named_modules()))}
        self._stack: list[str] = [""]
        self._exclude = exclude  # storage ids of parameters, buffers and inputs
        self._seen: dict[int, weakref.ref[Any]] = {}
        self.per_module: dict[str, int] = {}
        self.total = 0

    def _pre(self, module: nn.Module, _inputs: Any) -> None:
        self._stack.append(self._names.get(id(module), self._stack[-1]))

    def _post(self, module: nn.Module, _inputs: Any, _output: Any) -> None:
        if len(self._stack) > 1:
            self._stack.pop()

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = id(storage)
        if key not in self._exclude and key not in self._seen:
            self._seen[key] = weakref.ref(storage)  # keeps the id from being reused
            nbytes = int(storage.nbytes())
            self.total += nbytes
            name = self._stack[-1]
            # charge the module and each of its ancestors, as FLOPs are charged
            parts = name.split(".") if name else []
            for i in range(len(parts) + 1):
                prefix = ".".join(parts[:i])
                self.per_module[prefix] = self.per_module.get(prefix, 0) + nbytes
        return tensor

    @contextmanager
    def active(self) -> Iterator[None]:
        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )

        handles = [
            register_module_forward_pre_hook(self._pre),
            register_module_forward_hook(self._post),
        ]
        try:
            with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
                yield
        finally:
            for h in handles:
                h.remove()


@contextmanager
def _preserve_modes(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _batch_dim(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    for t in _tensors_in((args, kwargs)):
        if t.dim() >= 1:
            return int(t.shape[0])
    return None


def _rebatch(obj: Any, old: int | None, new: int, dtype: torch.dtype | None) -> Any:
    """Fake copies of the inputs with the batch dimension set to ``new`` (inside a fake mode)."""
    if isinstance(obj, torch.Tensor):
        shape = list(obj.shape)
        if shape and old is not None and shape[0] == old:
            shape[0] = new
        dt = dtype if dtype is not None and obj.is_floating_point() else obj.dtype
        return torch.empty(shape, dtype=dt, device="cpu")
    if isinstance(obj, Mapping):
        return {k: _rebatch(v, old, new, dtype) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_rebatch(v, old, new, dtype) for v in obj)
    if isinstance(obj, list):
        return [_rebatch(v, old, new, dtype) for v in obj]
    return obj


def _fake_state(
    model: nn.Module, dtype: torch.dtype | None
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], int, int, int]:
    """Fake parameters and buffers (created inside the active fake mode).

    Returns (name -> tensor for functional_call, trainable tensors, parameter bytes,
    trainable bytes, buffer bytes). Tied parameters appear once, as in ``model.parameters()``.
    """
    state: dict[str, torch.Tensor] = {}
    trainable: list[torch.Tensor] = []
    param_bytes = trainable_bytes = buffer_bytes = 0
    for name, p in model.named_parameters():
        dt = dtype if dtype is not None and p.is_floating_point() else p.dtype
        fake = torch.empty_strided(p.shape, p.stride(), dtype=dt, device="cpu")
        nbytes = fake.untyped_storage().nbytes()
        param_bytes += nbytes
        if p.requires_grad:
            fake.requires_grad_(True)
            trainable.append(fake)
            trainable_bytes += nbytes
        state[name] = fake
    for name, b in model.named_buffers():
        dt = dtype if dtype is not None and b.is_floating_point() else b.dtype
        fake = torch.empty_strided(b.shape, b.stride(), dtype=dt, device="cpu")
        buffer_bytes += fake.untyped_storage().nbytes()
        state[name] = fake
    return state, trainable, param_bytes, trainable_bytes, buffer_bytes


def _mb(nbytes: int) -> float:
    return round(nbytes / _MB, 2)


def _validate(batch_size: object, optimizer: str, dtype: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch size must be a positive integer, got {batch_size!r}")
    if optimizer not in OPTIMIZERS:
        raise UsageError(
            f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"
        )
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise UsageError(f"dtype must be a floating torch.dtype, got {dtype!r}")


def estimate_memory(
    model: nn.Module,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    batch_size: int,
    optimizer: str = "adamw",
    dtype: torch.dtype | None = None,
    amp: bool = False,
    momentum: float = 0.9,
) -> MemoryEstimate:
    """Estimate the memory of one training step and of one no-grad forward at ``batch_size``.

    ``args``/``kwargs`` are example inputs at any batch size (their shapes and dtypes are all
    that is read); every tensor whose first dimension equals the first input's is re-batched.
    ``dtype`` casts parameters, buffers and floating inputs (pure low-precision training);
    ``amp`` instead keeps them as they are (``dtype`` in the result is theirs) and runs forward
    and loss under
    ``torch.autocast("cpu", dtype=dtype or torch.bfloat16)``. Only trainable parameters get
    gradients and optimizer state. Nothing runs on real data and ``model`` is left unchanged.

    Example::

        >>> est = estimate_memory(nn.Linear(1024, 1024), (torch.zeros(1, 1024),), batch_size=8)
        >>> est.parameters_mb  # (1024 * 1024 + 1024) * 4 bytes
        4.0
    """
    kwargs = dict(kwargs or {})
    _validate(batch_size, optimizer, dtype)
    cast = None if amp else dtype
    autocast_dtype = (dtype or torch.bfloat16) if amp else None
    old_batch = _batch_dim(args, kwargs)

    def forward_with(state: dict[str, torch.Tensor]) -> Callable[..., Any]:
        def forward(*a: Any, **kw: Any) -> Any:
            return torch.func.functional_call(model, state, a, kw, strict=False)

        return forward

    try:
        with _preserve_modes(model):
            # inference: eval mode, no grad
            model.eval()
            with FakeTensorMode(allow_non_fake_inputs=False), _LiveStorages() as infer:
                state, _, _, _, _ = _fake_state(model, cast)
                fargs, fkwargs = _rebatch((args, kwargs), old_batch, batch_size, cast)
                out = _inference_step(
                    forward_with(state), fargs, fkwargs, autocast_dtype=autocast_dtype
                )
                del out, state, fargs, fkwargs
            # training: train mode, forward + loss + backward + optimizer.step()
            model.train()
            with ExitStack() as stack:
                stack.enter_context(FakeTensorMode(allow_non_fake_inputs=False))
                live = stack.enter_context(_LiveStorages())
                state, trainable, p_bytes, t_bytes, b_bytes = _fake_state(model, cast)
                fargs, fkwargs = _rebatch((args, kwargs), old_batch, batch_size, cast)
                input_bytes = sum(
                    t.untyped_storage().nbytes() for t in _tensors_in((fargs, fkwargs))
                )
                exclude = {
                    id(t.untyped_storage())
                    for t in [*state.values(), *_tensors_in((fargs, fkwargs))]
                }
                saved = _SavedActivations(model, exclude)
                opt = _make_optimizer(optimizer, trainable, momentum=momentum)

                def mark(phase: str) -> None:
                    live.mark(phase)
                    live.allow_item = phase == "optimizer"

                with saved.active():
                    _training_step(
                        forward_with(state),
                        fargs,
                        fkwargs,
                        opt,
                        autocast_dtype=autocast_dtype,
                        mark=mark,
                    )
                opt_bytes = 0
                if opt is not None:
                    seen: set[int] = set()
                    for st in opt.state.values():
                        for t in _tensors_in(dict(st)):
                            key = id(t.untyped_storage())
                            if key not in seen:
                                seen.add(key)
                                opt_bytes += t.untyped_storage().nbytes()
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError) as err:
        raise ForwardError(
            "forward/backward on fake tensors for the memory estimate failed: "
            f"{type(err).__name__}: {err}"
        ) from err

    phases = {
        k: v for k, v in live.phase_peaks.items() if k in ("forward", "backward", "optimizer")
    }
    peak_phase = max(phases, key=lambda k: phases[k]) if phases else "forward"
    infer_rss = max(_glibc_peak(infer.events), infer.peak)
    train_rss = max(_glibc_peak(live.events), live.peak)
    return MemoryEstimate(
        batch_size=batch_size,
        dtype=str(cast or next((p.dtype for p in model.parameters()), torch.float32)).removeprefix(
            "torch."
        ),
        optimizer=optimizer,
        amp=amp,
        amp_dtype=str(autocast_dtype).removeprefix("torch.") if autocast_dtype else None,
        parameters_mb=_mb(p_bytes),
        buffers_mb=_mb(b_bytes),
        input_mb=_mb(input_bytes),
        activations_mb=_mb(saved.total),
        gradients_mb=_mb(t_bytes),
        optimizer_state_mb=_mb(opt_bytes),
        inference_peak_mb=_mb(infer_rss),
        training_peak_mb=_mb(train_rss),
        training_peak_phase=peak_phase,
        inference_peak_bytes=infer_rss,
        training_peak_bytes=train_rss,
        inference_tensor_peak_mb=_mb(infer.peak),
        training_tensor_peak_mb=_mb(live.peak),
        per_module=dict(sorted(saved.per_module.items())),
    )


def largest_batch_size(
    model: nn.Module,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    max_memory_bytes: int,
    optimizer: str = "adamw",
    dtype: torch.dtype | None = None,
    amp: bool = False,
    momentum: float = 0.9,
    limit: int = 2**16,
) -> tuple[int, MemoryEstimate]:
    """The largest batch size whose training peak fits in ``max_memory_bytes``.

    Doubles from 1 until the estimate no longer fits, then bisects (estimates are cheap, and the
    peak grows with the batch). Returns ``(0, estimate at batch 1)`` when not even batch 1
    fits, and stops at ``limit``. Returns the estimate at the batch size found.

    Example::

        >>> n, est = largest_batch_size(model, (x,), max_memory_bytes=24 * 2**30)
    """

    def at(batch: int) -> MemoryEstimate:
        return estimate_memory(
            model,
            args,
            kwargs,
            batch_size=batch,
            optimizer=optimizer,
            dtype=dtype,
            amp=amp,
            momentum=momentum,
        )

    best = at(1)
    if best.training_peak_bytes > max_memory_bytes:
        return 0, best
    low, high = 1, None
    while high is None and low < limit:
        trial = min(low * 2, limit)
        est = at(trial)
        if est.training_peak_bytes <= max_memory_bytes:
            low, best = trial, est
        else:
            high = trial
    if high is None:
        return low, best
    while high - low > 1:
        mid = (low + high) // 2
        est = at(mid)
        if est.training_peak_bytes <= max_memory_bytes:
            low, best = mid, est
        else:
            high = mid
    return low, best


_PAGE = 4096
_MMAP_THRESHOLD_MIN = 128 * 1024  # glibc's M_MMAP_THRESHOLD default
_MMAP_THRESHOLD_MAX = 32 * 2**20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
_TOP_PAD = 128 * 1024


def _glibc_peak(events: Sequence[tuple[int, int]], *, steady: bool = True) -> int:
    """Peak resident bytes of a replay of ``events`` through a model of glibc malloc.

    What the model keeps of glibc (single arena, steady state after a first step): blocks at
    or above the mmap threshold are mmapped and given back on free; the threshold has risen to
    the largest block ever freed below 32 MiB (glibc raises it on every such free); smaller
    blocks come from the heap, best fit, split and coalesced; freed heap memory stays resident
    unless it merges into the top of the heap and the top outgrows twice the threshold.
    """
    sizes = {eid: n for eid, n in events if n >= 0}
    freed = [sizes[eid] for eid, n in events if n < 0 and eid in sizes]
    if steady:
        threshold = max([_MMAP_THRESHOLD_MIN, *(s for s in freed if s <= _MMAP_THRESHOLD_MAX)])
    else:
        threshold = _MMAP_THRESHOLD_MIN
    trim = 2 * threshold
    blocks: list[list[int]] = []  # [address, size, free] in address order, below the top
    where: dict[int, list[int]] = {}
    top = brk = 0  # heap [0, top) is in blocks, [top, brk) is the free top chunk
    mapped = 0
    peak = 0
    mmapped: dict[int, int] = {}
    for eid, n in events:
        if n >= 0:
            size = (n + 16 + 63) // 64 * 64  # header + posix_memalign(64)
            if size >= threshold:
                mmapped[eid] = (size + _PAGE - 1) // _PAGE * _PAGE
                mapped += mmapped[eid]
            else:
                best = None
                for b in blocks:
                    if b[2] and b[1] >= size and (best is None or b[1] < best[1]):
                        best = b
                if best is not None:
                    if best[1] > size:
                        rest = [best[0] + size, best[1] - size, 1]
                        blocks.insert(blocks.index(best) + 1, rest)
                    best[1], best[2] = size, 0
                    where[eid] = best
                else:
                    block = [top, size, 0]
                    blocks.append(block)
                    where[eid] = block
                    top += size
                    if top > brk:
                        brk = (top + _TOP_PAD + _PAGE - 1) // _PAGE * _PAGE
        else:
            if eid in mmapped:
                chunk = mmapped.pop(eid)
                mapped -= chunk
                if not steady and threshold < chunk <= _MMAP_THRESHOLD_MAX:
                    threshold, trim = chunk, 2 * chunk
                continue
            if eid not in where:
                continue
            block = where.pop(eid)
            i = blocks.index(block)
            block[2] = 1
            if i + 1 < len(blocks) and blocks[i + 1][2]:
                block[1] += blocks.pop(i + 1)[1]
            if i > 0 and blocks[i - 1][2]:
                blocks[i - 1][1] += blocks.pop(i)[1]
                i -= 1
                block = blocks[i]
            if i == len(blocks) - 1:  # merges into the top chunk
                blocks.pop()
                top = block[0]
                if brk - top > trim:
                    brk = (top + _TOP_PAD + _PAGE - 1) // _PAGE * _PAGE
        peak = max(peak, brk + mapped)
    return peak
