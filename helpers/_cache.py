"""Content-addressed keys and atomic writes shared by every on-disk cache.

Every expensive artifact of the book (trained weights, saliency maps, the
synthetic dataset) is stored under a key that hashes *everything* that
determines it, and is written atomically: a crash or a concurrent run can
leave a stray temporary file, never a half-written artifact under its final
name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["stable_hash", "atomic_write", "atomic_write_bytes"]


def _canonical(obj: Any) -> Any:
    """Turn ``obj`` into plain JSON types with a stable ordering."""
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj)  # exact, platform independent
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return _canonical(obj.tolist())
    raise TypeError(f"cannot hash a {type(obj).__name__} in a cache key; pass plain values")


def stable_hash(obj: Any, *, length: int = 16) -> str:
    """Hex digest of ``obj`` that is identical across runs, machines and Python versions.

    Parameters
    ----------
    obj : dict, list, str, int, float, bool or None (nested)
        Everything that determines the cached artifact.
    length : int, optional
        Number of hex characters kept (default 16, i.e. 64 bits).
    """
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file lives in the destination folder so that the final
    ``os.replace`` is atomic on POSIX file systems.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
