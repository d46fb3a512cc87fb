"""The cache of passing checks: answer an unchanged check without importing torch.

An entry is stored only after a check passed. It is keyed by the request (the resolved
:class:`~gai_meta.project.ModelSpec`, which holds every value ``[tool.gai-meta]`` sets for the
model; gai-meta's version, the Python interpreter, the folder and ``PYTHONPATH``) and lists every
file the result depended on with its size, mtime and sha256: the source, the config, the
baseline, the files defining the model's classes (their whole MRO) and gai-meta's own code. A lookup is a hit only when the entry parses, has this format
version, this gai-meta version and this key, and every listed file still has its recorded
content. Anything else (missing, corrupt, foreign, changed) is a miss, never an error.

Files up to 4 MiB are always hashed (a few milliseconds); larger ones (checkpoints) are trusted
by size and mtime when their mtime was already old when recorded, and hashed otherwise.

Location: ``$GAI_META_CACHE_DIR``, else ``$XDG_CACHE_HOME/gai-meta``, else ``~/.cache/gai-meta``.
Imports no torch; :func:`class_files` only walks classes it is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gai_meta import __version__

__all__ = [
    "CACHE_FORMAT",
    "cache_dir",
    "class_files",
    "lookup",
    "own_files",
    "request_key",
    "stamp",
    "store",
]

CACHE_FORMAT = 1
_HASH_ALWAYS_BELOW = 4 * 2**20
_RACY_NS = 2_000_000_000  # a file modified this soon before it was stamped may change unseen


def cache_dir() -> Path:
    """Where check results are cached (outside any repository by default)."""
    explicit = os.environ.get("GAI_META_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "gai-meta"


def request_key(request: Mapping[str, Any]) -> str:
    """sha256 of the request and of everything outside files that can change its answer."""
    identity = {
        "format": CACHE_FORMAT,
        "gai_meta": __version__,
        "python": sys.version,
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "request": request,
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def stamp(path: Path) -> dict[str, Any] | None:
    """``{path, size, mtime_ns, sha256, trust_stat}`` of ``path`` now, or None if unreadable."""
    try:
        st = path.stat()
        digest = _sha256(path)
    except OSError:
        return None
    trusted = st.st_size > _HASH_ALWAYS_BELOW and time.time_ns() - st.st_mtime_ns > _RACY_NS
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": digest,
        "trust_stat": trusted,
    }


def _unchanged(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    path, size, digest = record.get("path"), record.get("size"), record.get("sha256")
    if not isinstance(path, str) or not isinstance(size, int) or not isinstance(digest, str):
        return False
    try:
        st = os.stat(path)
        if st.st_size != size:
            return False
        if record.get("trust_stat") is True and st.st_mtime_ns == record.get("mtime_ns"):
            return True
        return _sha256(Path(path)) == digest
    except OSError:
        return False


def _entry_path(key: str) -> Path:
    return cache_dir() / "check" / f"{key}.json"


def lookup(key: str) -> dict[str, Any] | None:
    """The stored result of a passing check for ``key`` whose files are unchanged, else None."""
    try:
        entry = json.loads(_entry_path(key).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    if (
        entry.get("format") != CACHE_FORMAT
        or entry.get("gai_meta") != __version__
        or entry.get("key") != key
    ):
        return None
    files, result = entry.get("files"), entry.get("result")
    if not isinstance(files, list) or not files or not isinstance(result, dict):
        return None
    if not all(_unchanged(record) for record in files):
        return None
    return result


def store(key: str, stamps: Iterable[dict[str, Any] | None], result: Mapping[str, Any]) -> bool:
    """Record a passing check; False (and nothing stored) when any file could not be stamped.

    A cache that cannot be written never fails a check: errors are swallowed.
    """
    files = list(stamps)
    if any(s is None for s in files):
        return False
    entry = {
        "format": CACHE_FORMAT,
        "gai_meta": __version__,
        "key": key,
        "files": files,
        "result": dict(result),
    }
    data = json.dumps(entry, indent=1, sort_keys=True).encode()
    from gai_meta.atomic import write_bytes_atomic
    from gai_meta.errors import GaiMetaError

    with contextlib.suppress(GaiMetaError, OSError):
        write_bytes_atomic(_entry_path(key), data)
        return True
    return False


def own_files() -> list[Path]:
    """gai-meta's own Python files: a changed gai-meta (an editable install) is a changed check."""
    root = Path(__file__).resolve().parent
    return sorted(root.rglob("*.py"))


def class_files(classes: Iterable[type]) -> list[Path]:
    """The source files defining ``classes`` and every class in their MRO (builtins left out)."""
    import inspect

    files: dict[str, None] = {}
    for cls in classes:
        for klass in cls.__mro__:
            if klass.__module__ == "builtins":
                continue
            try:
                files[inspect.getfile(klass)] = None
            except (TypeError, OSError):  # built-in or dynamically made classes
                continue
    return [Path(f).resolve() for f in files if Path(f).is_file()]
