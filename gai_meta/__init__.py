"""gai-meta: introspect PyTorch models and experiments and write their metadata as JSON.

Importing this package does not import torch; the functions below import it when called.

Example (inside a training loop)::

    import gai_meta

    gai_meta.generate_metadata(model, "experiments/run-1", config="config.yaml")
    for epoch in range(1, epochs + 1):
        ...
        gai_meta.record_epoch("experiments/run-1", epoch=epoch, train_loss=tl, val_loss=vl)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it; imported on first use (PEP 562) so that
# ``import gai_meta`` stays light and never imports torch.
_LAZY = {
    "generate_metadata": "gai_meta.api",
    "record_epoch": "gai_meta.history",
    "read_history": "gai_meta.history",
    "load_config": "gai_meta.config",
    "load_experiment": "gai_meta.experiments",
}

__all__ = [
    "__version__",
    "generate_metadata",
    "load_config",
    "load_experiment",
    "read_history",
    "record_epoch",
]

if TYPE_CHECKING:
    from gai_meta.api import generate_metadata
    from gai_meta.config import load_config
    from gai_meta.experiments import load_experiment
    from gai_meta.history import read_history, record_epoch


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gai_meta' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
