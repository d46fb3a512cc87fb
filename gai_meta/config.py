"""Config loading and the GAI-YOLOv12 training system's setting-resolution rules.

A config is the training system's four-section YAML (``dataset``, ``model``, ``dataloader``,
``experiment``). :func:`load_config` reads it safely (no Python tags, alias bombs refused
without being expanded); the ``resolve_*`` functions apply the rules the training loop uses
(see ``reference/gai-yolov12.md``, "How the training loop resolves its settings") so that
``experiment_config.json`` records what training would have used.

This module is imported at CLI start-up: it never imports torch at module level.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import math
import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gai_meta import __version__
from gai_meta.errors import ConfigError

__all__ = [
    "MAX_EXPANDED_NODES",
    "TRAINER_CONFIG_KEYS",
    "LoadedConfig",
    "dataloader_snapshot",
    "experiment_config_document",
    "file_sha256",
    "load_config",
    "load_config_mapping",
    "require_model_section",
    "resolve_artifact_dir",
    "resolve_trainer_config",
    "runtime_info",
    "training_settings",
]

#: A YAML document whose aliases would expand to more nodes than this is refused. Real training
#: configs have a few hundred nodes; the limit leaves room for heavy use of anchors and merges.
MAX_EXPANDED_NODES = 100_000

#: The keys of ``trainer_config`` in ``experiment_config.json``, in the training system's order.
TRAINER_CONFIG_KEYS = (
    "num_epochs",
    "learning_rate",
    "weight_decay",
    "device",
    "gradient_clip_norm",
    "log_interval",
    "checkpoint_interval",
    "optimizer",
    "scheduler",
    "scheduler_params",
    "assigner_params",
    "artifact_dir",
    "enable_tensorboard",
    "tensorboard_log_interval",
)

_OPTIMIZERS = ("adamw", "sgd")
_DEFAULT_NAME = "default-experiment"
_SECTIONS = "dataset, model, dataloader, experiment"


@dataclass(frozen=True)
class LoadedConfig:
    """A config mapping and where it came from.

    ``path`` and ``sha256`` (of the file's bytes) are ``None`` for in-memory configs.
    Example: ``load_config("config.yaml").section("experiment")["learning_rate"]``.
    """

    path: Path | None
    data: dict[str, Any]
    sha256: str | None

    def section(self, name: str) -> dict[str, Any]:
        """Top-level section ``name``: ``{}`` when absent or null; ConfigError if not a mapping."""
        return _section(self.data, name, path=self.path)

    def has_section(self, name: str) -> bool:
        """Whether the config has a non-null top-level ``name`` section."""
        return self.data.get(name) is not None


# --------------------------------------------------------------------------- loading


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader; the expansion check runs between composing and constructing."""


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read a YAML training config safely.

    Raises :class:`ConfigError` (exit 2, one line naming the file) for a missing file, a folder,
    an unreadable or empty file, invalid YAML (with line and column), a top level that is not a
    mapping, and aliases that would expand beyond :data:`MAX_EXPANDED_NODES` nodes or refer to
    themselves (refused before anything is expanded).

    Example: ``cfg = load_config("configs/config.yaml"); cfg.sha256``.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError("config file not found; check the path", path=p)
    if p.is_dir():
        raise ConfigError(
            "is a folder, expected a YAML config file; pass the file inside it "
            f"(e.g. {p / 'config.yaml'})",
            path=p,
        )
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"cannot read config: {err.strerror or err}; check the file's permissions", path=p
        ) from err
    data = _parse(raw, path=p)
    return LoadedConfig(path=p, data=data, sha256=hashlib.sha256(raw).hexdigest())


def load_config_mapping(data: Mapping[str, Any]) -> LoadedConfig:
    """Wrap an in-memory config (e.g. the dict a training loop already holds).

    The mapping is deep-copied, so later changes by the caller do not leak into records.
    Example: ``load_config_mapping({"experiment": {"name": "run-1"}})``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config must be a mapping of sections ({_SECTIONS}), got {_kind(data)}; "
            "pass a dict or the path of a YAML file"
        )
    copied = {str(k): copy.deepcopy(v) for k, v in data.items()}
    _check_values(copied, where="", path=None)
    return LoadedConfig(path=None, data=copied, sha256=None)


def _parse(raw: bytes, *, path: Path) -> dict[str, Any]:
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(
                f"config file is empty; expected a YAML mapping with the sections {_SECTIONS}",
                path=path,
            )
        _check_expansion(node, path=path)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        raise ConfigError(_yaml_message(err), path=path) from err
    except yaml.YAMLError as err:  # reader errors (bad encoding) carry no problem_mark
        raise ConfigError(f"invalid YAML: {err}; save the file as UTF-8 text", path=path) from err
    finally:
        loader.dispose()
    if data is None:  # a lone "---" or "~": a document with nothing in it
        raise ConfigError(
            f"config file is empty; expected a YAML mapping with the sections {_SECTIONS}",
            path=path,
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"top level is {_kind(data)}, expected a mapping of sections ({_SECTIONS}); "
            "check this is a training config",
            path=path,
        )
    _check_values(data, where="", path=path)
    return data


def _yaml_message(err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = err.problem or err.context or "syntax error"
    return f"invalid YAML{where}: {problem}; fix the syntax there"


def _check_expansion(root: yaml.Node, *, path: Path) -> None:
    """Refuse documents whose aliases expand too far, before anything is constructed.

    Composed YAML is a graph in which an alias is a second reference to the anchored node, so
    a "billion laughs" file is tiny as a graph. The expanded size of every node is computed
    once (memoised, iterative), so the check is linear in the graph and never expands it.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > MAX_EXPANDED_NODES:
                raise ConfigError(
                    f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values "
                    "(an alias bomb?); refused without expanding it: remove the repeated aliases",
                    path=path,
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise ConfigError(
                    "a YAML alias refers to a node that contains it (a recursive structure); "
                    "refused: replace the alias with the values it should hold",
                    path=path,
                )
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_values(value: Any, *, where: str, path: Path | None) -> None:
    """Refuse values that cannot be recorded as JSON (``!!binary``, ``!!set``, objects)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise ConfigError(
                    f"key {k!r} under '{where or '(top level)'}' is {_kind(k)}; "
                    "use plain text keys",
                    path=path,
                )
            _check_values(v, where=f"{where}.{k}" if where else str(k), path=path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(v, where=f"{where}[{i}]", path=path)
    elif value is None or isinstance(value, (str, int, float, bool, _dt.date)):
        return
    else:
        raise ConfigError(
            f"'{where}' holds {_kind(value)}, which cannot be recorded as JSON; "
            "use text, numbers, booleans, lists or mappings",
            path=path,
        )


def _section(data: Mapping[str, Any], name: str, *, path: Path | None) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"section '{name}' is {_kind(value)}, expected a mapping of settings; "
            f"indent the settings under '{name}:'",
            path=path,
        )
    return value


def require_model_section(cfg: LoadedConfig) -> dict[str, Any]:
    """The ``model`` section, or ConfigError when it is missing, null or not a mapping.

    ``summarize`` needs it to build the model; ``history`` and the record files do not.
    """
    value = cfg.data.get("model")
    if value is None:
        raise ConfigError(
            "config has no 'model' section; add one (e.g. 'model: {num_classes: 10}') "
            "or pass a checkpoint instead",
            path=cfg.path,
        )
    return cfg.section("model")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- resolution


def _data(config: LoadedConfig | Mapping[str, Any]) -> tuple[Mapping[str, Any], Path | None]:
    if isinstance(config, LoadedConfig):
        return config.data, config.path
    return config, None


def resolve_artifact_dir(config: LoadedConfig | Mapping[str, Any]) -> Path:
    """Where training writes its artifacts, as the training loop decides it.

    ``experiment.artifact_dir`` when given, else ``./experiments/{safe}`` (relative to the current
    working directory) where ``safe`` is ``experiment.name`` (default ``default-experiment``)
    lower-cased with spaces and underscores turned into ``-``.
    Example: name ``"GAI_YOLO Run"`` -> ``Path("experiments/gai-yolo-run")``.
    """
    data, path = _data(config)
    return _artifact_dir(_section(data, "experiment", path=path), path=path)


def _artifact_dir(exp: Mapping[str, Any], *, path: Path | None) -> Path:
    given = exp.get("artifact_dir")
    if given is not None:
        if not isinstance(given, str) or not given.strip():
            raise ConfigError(
                f"experiment.artifact_dir is {_kind(given)}, expected a folder path as text",
                path=path,
            )
        return Path(given)
    name = exp.get("name", _DEFAULT_NAME)
    if name is None:
        name = _DEFAULT_NAME
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(
            f"experiment.name is {_kind(name)}, expected text such as 'my-experiment'",
            path=path,
        )
    safe = name.lower().replace(" ", "-").replace("_", "-")
    # The training system would put such a name's folder outside ./experiments (or nowhere);
    # gai-meta refuses rather than write there.
    if "/" in safe or "\\" in safe or safe in (".", ".."):
        raise ConfigError(
            f"experiment.name {name!r} would make a folder outside ./experiments; "
            "use a name without '/', '\\' or '..', or set experiment.artifact_dir",
            path=path,
        )
    return Path("experiments") / safe


def resolve_trainer_config(config: LoadedConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``trainer_config`` exactly as the training loop resolves it (defaults filled in).

    Keys: :data:`TRAINER_CONFIG_KEYS`. Values are type-checked; a wrong type is a ConfigError
    naming the setting (e.g. ``experiment.learning_rate``). ``artifact_dir`` is a string.
    Example: ``resolve_trainer_config({})["optimizer"] == "adamw"``.
    """
    data, path = _data(config)
    exp = _section(data, "experiment", path=path)
    log_interval = _int(exp, "log_interval", 10, minimum=1, path=path)
    tensorboard = exp.get("tensorboard")
    if tensorboard is None:
        tensorboard = {}
    elif not isinstance(tensorboard, dict):
        raise ConfigError(
            f"experiment.tensorboard is {_kind(tensorboard)}, expected a mapping "
            "such as '{enabled: true, log_interval: 10}'",
            path=path,
        )
    enabled = tensorboard.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise ConfigError(
            f"experiment.tensorboard.enabled is {_kind(enabled)}, expected true or false",
            path=path,
        )
    return {
        "num_epochs": _int(exp, "num_epochs", 1, minimum=1, path=path),
        "learning_rate": _number(exp, "learning_rate", 1e-3, positive=True, path=path),
        "weight_decay": _number(exp, "weight_decay", 0.0, positive=False, path=path),
        "device": _device(exp, path=path),
        "gradient_clip_norm": _optional_number(exp, "gradient_clip_norm", path=path),
        "log_interval": log_interval,
        "checkpoint_interval": _int(exp, "checkpoint_interval", 5, minimum=1, path=path),
        "optimizer": _optimizer(exp, path=path),
        "scheduler": _optional_text(exp, "scheduler", path=path),
        "scheduler_params": _mapping(exp, "scheduler_params", path=path),
        "assigner_params": _mapping(exp, "assigner", path=path),
        "artifact_dir": str(_artifact_dir(exp, path=path)),
        "enable_tensorboard": enabled,
        "tensorboard_log_interval": _int(
            tensorboard,
            "log_interval",
            log_interval,
            minimum=1,
            path=path,
            where="experiment.tensorboard.log_interval",
        ),
    }


def runtime_info(device: str = "auto") -> dict[str, Any]:
    """``runtime_info`` for ``device`` on this machine: device_used, cuda_available, count.

    ``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``; any other value is
    recorded as given. Imports torch (lazily).
    """
    import torch

    available = bool(torch.cuda.is_available())
    used = ("cuda" if available else "cpu") if device == "auto" else device
    return {
        "device_used": used,
        "cuda_available": available,
        "cuda_device_count": int(torch.cuda.device_count()) if available else 0,
    }


def training_settings(config: LoadedConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """The training fields of ``model_summary.json``: device, optimizer, scheduler, lr, wd.

    Resolved like :func:`resolve_trainer_config` (``device`` is the device training would use on
    this machine); every value is ``None`` without a config.
    """
    if config is None:
        return dict.fromkeys(("device", "optimizer", "scheduler", "learning_rate", "weight_decay"))
    trainer = resolve_trainer_config(config)
    return {
        "device": runtime_info(trainer["device"])["device_used"],
        "optimizer": trainer["optimizer"],
        "scheduler": trainer["scheduler"],
        "learning_rate": trainer["learning_rate"],
        "weight_decay": trainer["weight_decay"],
    }


def dataloader_snapshot(config: LoadedConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The ``dataloader`` section exactly as written (a deep copy); ``{}`` when absent."""
    data, path = _data(config)
    return copy.deepcopy(_section(data, "dataloader", path=path))


def experiment_config_document(
    cfg: LoadedConfig,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_sha256: str | None = None,
) -> dict[str, Any]:
    """The whole ``experiment_config.json`` document.

    ``{"schema_version": 1, "trainer_config", "runtime_info", "config", "provenance"}``;
    provenance names gai-meta/torch/Python versions, the config's path and sha256, the
    checkpoint's path and sha256 (computed when not given) and the git commit of the
    repository holding the config (null when there is none or git is missing).
    """
    import torch

    trainer = resolve_trainer_config(cfg)
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and checkpoint_sha256 is None and ckpt.is_file():
        checkpoint_sha256 = file_sha256(ckpt)
    return {
        "schema_version": 1,
        "trainer_config": trainer,
        "runtime_info": runtime_info(trainer["device"]),
        "config": copy.deepcopy(cfg.data),
        "provenance": {
            "gai_meta_version": __version__,
            "torch_version": str(torch.__version__),
            "python_version": platform.python_version(),
            "config_path": None if cfg.path is None else str(cfg.path.resolve()),
            "config_sha256": cfg.sha256,
            "checkpoint_path": None if ckpt is None else str(ckpt.resolve()),
            "checkpoint_sha256": checkpoint_sha256,
            "git_commit": None if cfg.path is None else _git_commit(cfg.path.resolve().parent),
        },
    }


def _git_commit(folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or len(commit) not in (40, 64):
        return None
    return commit


# --------------------------------------------------------------------------- typed getters


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float_text_hint(value: Any) -> str:
    # PyYAML follows YAML 1.1: "1e-3" (no dot) is text, not a float. Name the fix.
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (YAML reads exponent numbers without a dot as text: write 1.0e-3, not 1e-3)"
    return ""


def _number(
    exp: Mapping[str, Any], key: str, default: float, *, positive: bool, path: Path | None
) -> float | int:
    value = exp.get(key, default)
    if value is None:
        value = default
    where = f"experiment.{key}"
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(
            f"{where} is {_kind(value)}, expected a number{_float_text_hint(value)}", path=path
        )
    if value < 0 or (positive and value == 0):
        need = "greater than 0" if positive else "0 or more"
        raise ConfigError(f"{where} is {value!r}, expected a number {need}", path=path)
    return value  # type: ignore[no-any-return]


def _optional_number(exp: Mapping[str, Any], key: str, *, path: Path | None) -> float | int | None:
    value = exp.get(key)
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"experiment.{key} is {_kind(value)}, expected a number greater than 0 or null"
            f"{_float_text_hint(value)}",
            path=path,
        )
    return value  # type: ignore[no-any-return]


def _int(
    section: Mapping[str, Any],
    key: str,
    default: int,
    *,
    minimum: int,
    path: Path | None,
    where: str | None = None,
) -> int:
    value = section.get(key, default)
    if value is None:
        value = default
    where = where or f"experiment.{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{where} is {_kind(value)}, expected a whole number (at least {minimum})", path=path
        )
    if value < minimum:
        raise ConfigError(f"{where} is {value}, expected at least {minimum}", path=path)
    return value


def _optional_text(exp: Mapping[str, Any], key: str, *, path: Path | None) -> str | None:
    value = exp.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"experiment.{key} is {_kind(value)}, expected text or null", path=path)


def _mapping(exp: Mapping[str, Any], key: str, *, path: Path | None) -> dict[str, Any]:
    value = exp.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"experiment.{key} is {_kind(value)}, expected a mapping of settings", path=path
        )
    return copy.deepcopy(value)


def _device(exp: Mapping[str, Any], *, path: Path | None) -> str:
    value = exp.get("device", "auto")
    if value is None:
        value = "auto"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"experiment.device is {_kind(value)}, expected 'auto', 'cpu', 'cuda' or 'cuda:N'",
            path=path,
        )
    return value


def _optimizer(exp: Mapping[str, Any], *, path: Path | None) -> str:
    value = exp.get("optimizer", "adamw")
    if value is None:
        value = "adamw"
    if not isinstance(value, str) or value.lower() not in _OPTIMIZERS:
        raise ConfigError(
            f"experiment.optimizer is {_kind(value)}, expected one of {', '.join(_OPTIMIZERS)}",
            path=path,
        )
    return value
