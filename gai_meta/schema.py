"""JSON Schemas (draft 2020-12) of the five metadata files, shipped in ``gai_meta/schemas/``.

Example: ``load_schema("training_history")["type"] == "array"``. Validating needs the optional
``jsonschema`` package (a test extra); gai-meta itself only ships and prints the schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gai_meta.errors import UsageError

__all__ = ["SCHEMA_NAMES", "available_schemas", "load_schema", "schema_path"]

_DIR = Path(__file__).resolve().parent / "schemas"

#: Schema names, one per metadata file (the file name without ``.json``).
SCHEMA_NAMES = (
    "model_summary",
    "model_parameters",
    "experiment_config",
    "dataloader_config_snapshot",
    "training_history",
)


def _normalise(name: str) -> str:
    base = name.removesuffix(".json")
    aliases = {
        "summary": "model_summary",
        "parameters": "model_parameters",
        "dataloader": "dataloader_config_snapshot",
        "history": "training_history",
    }
    return aliases.get(base, base)


def schema_path(name: str) -> Path:
    """The schema file for ``name`` (e.g. ``training_history``, ``.json`` optional)."""
    key = _normalise(name)
    path = _DIR / f"{key}.json"
    if key not in SCHEMA_NAMES or not path.is_file():
        available = [n for n in SCHEMA_NAMES if (_DIR / f"{n}.json").is_file()]
        raise UsageError(f"no schema named {name!r}; choose one of {', '.join(available)}")
    return path


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema for the metadata file ``name``."""
    value: dict[str, Any] = json.loads(schema_path(name).read_bytes())
    return value


def available_schemas() -> list[str]:
    """The names whose schema file ships with this installation, in file order."""
    return [n for n in SCHEMA_NAMES if (_DIR / f"{n}.json").is_file()]
