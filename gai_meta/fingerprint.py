"""Architecture fingerprints: a stable, diff-friendly JSON record of a model's structure.

:func:`fingerprint` turns an introspection into a plain JSON document (model class, inputs,
totals, output shapes and one entry per module with its own parameters, buffers and output
shapes); :func:`diff_fingerprints` compares two of them and :func:`render_drift` writes the
comparison for people. No weights, no timestamps, no paths, no versions: the same model at the
same inputs always gives the same bytes (:func:`dumps_fingerprint`), so the baseline file
(``architecture.lock.json``) changes in a commit exactly when the architecture does.

Imports no torch: it reads the records of :mod:`gai_meta.accounting` and :mod:`gai_meta.probe`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gai_meta.errors import BaselineError

if TYPE_CHECKING:
    from gai_meta.summary import Introspection

__all__ = [
    "BASELINE_FILE",
    "SCHEMA_VERSION",
    "Drift",
    "LayerChange",
    "diff_fingerprints",
    "dumps_fingerprint",
    "fingerprint",
    "read_baseline",
    "render_drift",
    "write_baseline",
]

SCHEMA_VERSION = 1
BASELINE_FILE = "architecture.lock.json"


def _input_dtype(intro: Introspection) -> str:
    # The probe feeds a zero tensor of the model's first floating-point parameter dtype.
    for p in intro.account.params:
        if p.dtype.startswith(("float", "bfloat")):
            return p.dtype
    return "float32"


def fingerprint(intro: Introspection) -> dict[str, Any]:
    """The fingerprint document of an introspected model (plain JSON types, fixed key order).

    Example::

        intro = load_and_introspect("fixtures/example_config.yaml")
        fingerprint(intro)["totals"]["parameters"]  # 485340
    """
    acc = intro.account
    params: dict[str, dict[str, Any]] = {}
    for p in acc.params:
        entry: dict[str, Any] = {
            "shape": list(p.shape),
            "dtype": p.dtype,
            "trainable": p.requires_grad,
        }
        if p.aliases:
            entry["tied_to"] = list(p.aliases)
        params.setdefault(p.module, {})[_leaf(p.name, p.module)] = entry
    buffers: dict[str, dict[str, Any]] = {}
    for b in acc.buffers:
        buffers.setdefault(b.module, {})[_leaf(b.name, b.module)] = {
            "shape": list(b.shape),
            "dtype": b.dtype,
            "persistent": b.persistent,
        }
    outputs: dict[str, list[list[list[int]]]] = {}
    for call in intro.probe.calls if intro.probe else []:
        outputs.setdefault(call.name, []).append([list(s) for s in call.output_shapes])
    cls = type(intro.model)
    inputs = (
        [{"name": None, "shape": list(intro.input_shape), "dtype": _input_dtype(intro)}]
        if intro.input_shape is not None and intro.probe is not None
        else []
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"class": cls.__qualname__, "module": cls.__module__},
        "inputs": inputs,
        "totals": {
            "parameters": acc.total,
            "trainable": acc.trainable,
            "buffers": acc.buffer_numel,
            "parameter_bytes": acc.parameter_bytes,
            "buffer_bytes": acc.buffer_bytes,
            "bytes": acc.parameter_bytes + acc.buffer_bytes,
        },
        "output_shapes": [list(s) for s in intro.probe.output_shapes] if intro.probe else None,
        "layers": [
            {
                "name": name,
                "type": type_name,
                "parameters": params.get(name, {}),
                "buffers": buffers.get(name, {}),
                "outputs": outputs.get(name, []),
            }
            for name, type_name in acc.module_types.items()
        ],
    }


def _leaf(name: str, module: str) -> str:
    return name[len(module) + 1 :] if module else name


# An array holding only integers, pretty-printed one element per line by json.dumps.
_INT_ARRAY = re.compile(r"\[\s+(-?\d+(?:,\s+-?\d+)*)\s+\]")


def dumps_fingerprint(doc: Mapping[str, Any]) -> bytes:
    """Serialise a fingerprint: two-space indent, shapes on one line, trailing newline.

    A shape such as ``[1, 3, 640, 640]`` stays on one line, so a changed shape is a one-line diff.
    """
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    text = _INT_ARRAY.sub(lambda m: "[" + ", ".join(re.split(r",\s+", m.group(1))) + "]", text)
    return (text + "\n").encode("utf-8")


def write_baseline(path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` to ``path`` atomically (a failed write leaves the old baseline untouched)."""
    from gai_meta.atomic import write_bytes_atomic

    return write_bytes_atomic(path, dumps_fingerprint(doc))


def read_baseline(path: str | Path) -> dict[str, Any]:
    """Read and validate a baseline; every problem is a :class:`BaselineError` (exit 2)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BaselineError(
            "no architecture baseline here; run `gai-meta lock` (with the same source and "
            "options) to record one, then commit it",
            path=path,
        ) from None
    except OSError as err:
        raise BaselineError(f"cannot read the baseline: {err.strerror or err}", path=path) from err
    fix = "delete it and run `gai-meta lock` to record it again"
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise BaselineError(f"not valid JSON ({err}); {fix}", path=path) from None
    if not isinstance(doc, dict):
        raise BaselineError(f"expected a JSON object, found {type(doc).__name__}; {fix}", path=path)
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BaselineError(
            f"not a gai-meta baseline (schema_version is {version!r}, expected a whole number); "
            f"{fix}",
            path=path,
        )
    if version > SCHEMA_VERSION:
        raise BaselineError(
            f"written by a newer gai-meta (schema_version {version}; this gai-meta reads up to "
            f"{SCHEMA_VERSION}); upgrade gai-meta, or run `gai-meta lock` to rewrite it",
            path=path,
        )
    for key, kind in (("model", dict), ("totals", dict), ("layers", list), ("inputs", list)):
        if not isinstance(doc.get(key), kind):
            raise BaselineError(
                f"not a gai-meta baseline ('{key}' is missing or not a {kind.__name__}); {fix}",
                path=path,
            )
    if not all(isinstance(layer, dict) and "name" in layer for layer in doc["layers"]):
        raise BaselineError(f"not a gai-meta baseline (a layer has no name); {fix}", path=path)
    return doc


@dataclasses.dataclass(frozen=True)
class LayerChange:
    """One module present in both fingerprints whose entry differs; ``changes`` say how."""

    name: str
    type: str
    changes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Drift:
    """The difference between a baseline fingerprint (old) and the current one (new).

    ``totals`` holds only the totals that changed, as ``(old, new)``; ``added``/``removed`` are
    ``(name, type)`` pairs; ``other`` names differences outside these categories (layer order).
    """

    model: tuple[str, str] | None
    inputs: tuple[Any, Any] | None
    totals: dict[str, tuple[Any, Any]]
    added: tuple[tuple[str, str], ...]
    removed: tuple[tuple[str, str], ...]
    changed: tuple[LayerChange, ...]
    output_shapes: tuple[Any, Any] | None
    other: tuple[str, ...]

    @property
    def has_drift(self) -> bool:
        """Whether anything differs."""
        return bool(
            self.model
            or self.inputs
            or self.totals
            or self.added
            or self.removed
            or self.changed
            or self.output_shapes
            or self.other
        )


def _model_name(doc: Mapping[str, Any]) -> str:
    model = doc.get("model") or {}
    return f"{model.get('module', '?')}.{model.get('class', '?')}"


def _tensor_changes(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for leaf in old:
        if leaf not in new:
            out.append(f"{kind} {leaf} removed ({_shape(old[leaf].get('shape'))})")
    for leaf, n in new.items():
        o = old.get(leaf)
        if o is None:
            out.append(f"{kind} {leaf} added ({_shape(n.get('shape'))})")
            continue
        for field in sorted(set(o) | set(n)):
            if o.get(field) != n.get(field):
                before, after = o.get(field), n.get(field)
                if field == "shape":
                    before, after = _shape(before), _shape(after)
                out.append(f"{kind} {leaf} {field} {before} -> {after}")
    return out


def _layer_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if old.get("type") != new.get("type"):
        out.append(f"type {old.get('type')} -> {new.get('type')}")
    out += _tensor_changes("parameter", old.get("parameters") or {}, new.get("parameters") or {})
    out += _tensor_changes("buffer", old.get("buffers") or {}, new.get("buffers") or {})
    if old.get("outputs") != new.get("outputs"):
        out.append(f"outputs {_calls(old.get('outputs'))} -> {_calls(new.get('outputs'))}")
    known = {"name", "type", "parameters", "buffers", "outputs"}
    out += [
        f"{k} changed" for k in sorted((set(old) | set(new)) - known) if old.get(k) != new.get(k)
    ]
    return out


def diff_fingerprints(old: Mapping[str, Any], new: Mapping[str, Any]) -> Drift:
    """Compare a baseline (``old``) with the current fingerprint (``new``).

    ``diff_fingerprints(a, b).has_drift`` is true exactly when ``a != b``.
    """
    old_layers = {layer["name"]: layer for layer in old.get("layers") or []}
    new_layers = {layer["name"]: layer for layer in new.get("layers") or []}
    added = tuple(
        (n, str(layer.get("type"))) for n, layer in new_layers.items() if n not in old_layers
    )
    removed = tuple(
        (n, str(layer.get("type"))) for n, layer in old_layers.items() if n not in new_layers
    )
    changed = []
    for name, o in old_layers.items():
        n = new_layers.get(name)
        if n is not None and n != o:
            changes = _layer_changes(o, n)
            changed.append(LayerChange(name, str(n.get("type")), tuple(changes)))
    old_totals, new_totals = old.get("totals") or {}, new.get("totals") or {}
    totals = {
        k: (old_totals.get(k), new_totals.get(k))
        for k in dict.fromkeys([*old_totals, *new_totals])
        if old_totals.get(k) != new_totals.get(k)
    }
    model = (_model_name(old), _model_name(new)) if old.get("model") != new.get("model") else None
    inputs = (
        (old.get("inputs"), new.get("inputs")) if old.get("inputs") != new.get("inputs") else None
    )
    outs = (
        (old.get("output_shapes"), new.get("output_shapes"))
        if old.get("output_shapes") != new.get("output_shapes")
        else None
    )
    drift = Drift(model, inputs, totals, added, removed, tuple(changed), outs, ())
    if dict(old) != dict(new) and not drift.has_drift:
        common = [n for n in old_layers if n in new_layers]
        reason = (
            "layer order changed"
            if common != [n for n in new_layers if n in old_layers]
            else "other fields changed"
        )
        other = [
            f"{k} changed"
            for k in sorted(set(old) | set(new))
            if k not in _KNOWN_TOP and old.get(k) != new.get(k)
        ]
        drift = dataclasses.replace(drift, other=tuple(other or [reason]))
    return drift


_KNOWN_TOP = {"model", "inputs", "totals", "layers", "output_shapes"}


def _shape(shape: Any) -> str:
    if isinstance(shape, list) and all(isinstance(d, int) for d in shape):
        return "[" + ", ".join(str(d) for d in shape) + "]"
    return json.dumps(shape)


def _shapes(shapes: Any) -> str:
    if isinstance(shapes, list):
        return "[" + ", ".join(_shape(s) for s in shapes) + "]"
    return json.dumps(shapes)


def _calls(calls: Any) -> str:
    if isinstance(calls, list) and len(calls) == 1:
        return _shapes(calls[0])
    if isinstance(calls, list):
        return "[" + ", ".join(_shapes(c) for c in calls) + "]" if calls else "(not called)"
    return json.dumps(calls)


def _inputs(inputs: Any) -> str:
    if not inputs:
        return "(none)"
    if isinstance(inputs, list):
        return ", ".join(
            f"{i.get('name') or 'input'} {_shape(i.get('shape'))} {i.get('dtype')}"
            if isinstance(i, dict)
            else json.dumps(i)
            for i in inputs
        )
    return json.dumps(inputs)


def _input_hint(locked: Any) -> str | None:
    shape = locked[0].get("shape") if isinstance(locked, list) and len(locked) == 1 else None
    if not isinstance(shape, list) or not isinstance(locked[0], dict) or locked[0].get("name"):
        return None
    spec = ",".join(str(d) for d in shape)
    return (
        f"(output shapes follow the inputs; to check at the locked inputs pass --input-shape "
        f"{spec} or set input_shape = [{', '.join(str(d) for d in shape)}] in [tool.gai-meta])"
    )


def _signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else f"{n:,}"


def _capped(items: Sequence[str], limit: int) -> list[str]:
    if len(items) <= limit:
        return list(items)
    return [*items[:limit], f"... and {len(items) - limit} more"]


def render_drift(drift: Drift, *, indent: str = "  ", limit: int = 25) -> list[str]:
    """Readable lines describing ``drift`` (empty when there is none).

    At most ``limit`` layers are listed per category; the baseline file has every detail.
    """
    lines: list[str] = []
    if drift.model:
        lines.append(f"model class: {drift.model[0]} -> {drift.model[1]}")
    if "parameters" in drift.totals:
        before, after = drift.totals["parameters"]
        if isinstance(before, int) and isinstance(after, int):
            lines.append(f"parameters: {before:,} -> {after:,} ({_signed(after - before)})")
        else:
            lines.append(f"parameters: {before} -> {after}")
    for key, (before, after) in drift.totals.items():
        if key == "parameters":
            continue
        if isinstance(before, int) and isinstance(after, int):
            lines.append(f"{key}: {before:,} -> {after:,} ({_signed(after - before)})")
        else:
            lines.append(f"{key}: {before} -> {after}")
    if drift.inputs:
        lines.append(f"inputs: {_inputs(drift.inputs[0])} -> {_inputs(drift.inputs[1])}")
        hint = _input_hint(drift.inputs[0])
        if hint:
            lines.append(hint)
    if drift.output_shapes:
        old, new = drift.output_shapes
        lines.append(f"output shapes: {_shapes(old)} -> {_shapes(new)}")
    if drift.added:
        lines.append(f"layers added ({len(drift.added)}):")
        lines += [
            indent + s for s in _capped([f"{n or '(root)'} ({t})" for n, t in drift.added], limit)
        ]
    if drift.removed:
        lines.append(f"layers removed ({len(drift.removed)}):")
        lines += [
            indent + s for s in _capped([f"{n or '(root)'} ({t})" for n, t in drift.removed], limit)
        ]
    # Structural changes first; layers whose only change is their output shapes (everything
    # downstream of a change, or every layer when the inputs changed) are listed apart.
    structural = [c for c in drift.changed if not all(x.startswith("outputs ") for x in c.changes)]
    outputs_only = [c for c in drift.changed if c not in structural]
    for title, group in (("layers changed", structural), ("layer outputs changed", outputs_only)):
        if group:
            lines.append(f"{title} ({len(group)}):")
            rows = [f"{c.name or '(root)'} ({c.type}): {'; '.join(c.changes)}" for c in group]
            lines += [indent + row for row in _capped(rows, limit)]
    lines += list(drift.other)
    return lines
