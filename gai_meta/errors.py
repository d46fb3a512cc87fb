"""One exception tree for every user-facing failure.

Each error carries a one-line message (what was expected, what was found, the fix) and the
process exit code the CLI uses: 0 ok, 1 check failed / differences found, 2 bad input or usage.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "BaselineError",
    "CheckFailed",
    "CheckpointError",
    "ConfigError",
    "ForwardError",
    "GaiMetaError",
    "InputSpecError",
    "ModelBuildError",
    "SourceError",
    "StateDictMismatchError",
    "UnsafeCheckpointError",
    "UsageError",
]


class GaiMetaError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is the one line shown."""

    exit_code: int = 2

    def __init__(self, message: str, *, path: str | PathLike[str] | None = None) -> None:
        self.message = " ".join(message.split())  # always one line
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {self.message}" if self.path else self.message)


class UsageError(GaiMetaError):
    """A command-line option or argument that does not parse or does not fit."""


class InputSpecError(UsageError):
    """An ``--input``/``--input-shape`` specification that does not parse."""


class ConfigError(GaiMetaError):
    """A YAML config (or ``[tool.gai-meta]`` table) that is unreadable or holds invalid values."""


class SourceError(GaiMetaError):
    """A model source (file, folder, factory) that cannot be read."""


class CheckpointError(SourceError):
    """A file that is not a readable checkpoint (empty, truncated, random bytes, ...)."""


class UnsafeCheckpointError(CheckpointError):
    """Loading would execute code from the file; only allowed with ``--trust-checkpoint``."""


class ModelBuildError(GaiMetaError):
    """The model cannot be built from the config or factory."""


class StateDictMismatchError(ModelBuildError):
    """Checkpoint weights do not load strictly into the model built from the config."""


class ForwardError(GaiMetaError):
    """The dummy forward pass failed; the message names the module and the shapes it received."""


class CheckFailed(GaiMetaError):
    """An architecture check found drift or a broken budget (exit 1)."""

    exit_code = 1


class BaselineError(GaiMetaError):
    """An architecture baseline (``architecture.lock.json``) that is missing, corrupt or too new."""
