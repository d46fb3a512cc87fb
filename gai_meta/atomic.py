"""Atomic JSON output: a failed run never leaves a half-written or partly updated set of files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from gai_meta.errors import GaiMetaError

__all__ = ["dump_json", "write_bytes_atomic", "write_json_atomic", "write_json_files"]

_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dump_json(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Serialise ``obj`` (dicts, lists, dataclasses, paths via str) to indented JSON bytes."""
    opts = _OPTIONS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(obj, default=_default, option=opts) + b"\n"


def _default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def _temp_for(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600 files; give the result the mode a plain open() would have.
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    return next(iter(_write_all({Path(path): data}).values()))


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, sort_keys: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically. Example: ``write_json_atomic("a.json", {})``."""
    return write_bytes_atomic(path, dump_json(obj, sort_keys=sort_keys))


def write_json_files(
    folder: str | os.PathLike[str], documents: Mapping[str, Any]
) -> dict[str, Path]:
    """Write several JSON documents into ``folder``, all or none.

    Everything is serialised and written to temp files first; only when every temp file is
    complete are they moved into place, so a failure leaves the earlier files untouched.
    """
    base = Path(folder)
    payloads = {base / name: dump_json(doc) for name, doc in documents.items()}
    written = _write_all(payloads)
    return {name: written[base / name] for name in documents}


def _write_all(payloads: Mapping[Path, bytes]) -> dict[Path, Path]:
    temps: dict[Path, Path] = {}
    try:
        for path, data in payloads.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = _temp_for(path)
                temps[path] = tmp
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as err:
                raise GaiMetaError(
                    f"cannot write: {err.strerror or err}; check the folder exists and is writable",
                    path=path,
                ) from err
        for path, tmp in temps.items():
            os.replace(tmp, path)
        temps.clear()
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
    return {path: path for path in payloads}
