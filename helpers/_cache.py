"""Content-addressed keys and atomic writes shared by every on-disk cache.

Every expensive artifact of the book (trained weights, saliency maps, the
synthetic dataset) is stored under a key that hashes *everything* that
determines it, and is written atomically: a crash or a concurrent run can
leave a stray temporary file, never a half-written artifact under its final
name.

Corrupt entries: one policy for every cache
-------------------------------------------
The four caches that read artifacts back (trained classifiers
:mod:`helpers.models.cache`, U-Net localizers :mod:`helpers.localizer`,
self-explaining models :mod:`helpers.trainable.training`, saliency maps
:mod:`helpers.saliency.cache`) check what they read (weights against the
SHA-256 stored in their record, maps against their stored key and a SHA-256
of their values) and treat a failed check alike, through ``on_corrupt``
(:data:`ON_CORRUPT`):

* ``"recompute"`` (default): the entry is set aside, never deleted or
  overwritten (:func:`set_aside`, for inspection), a
  :class:`CorruptCacheWarning` names the file, and the artifact is trained or
  computed again. This is safe because every artifact is a deterministic
  function of its key (same settings and seed, same numbers): recomputing
  gives what the damaged file should have held, so the run stays correct
  and is not stopped by a flipped bit;
* ``"raise"``: a ``ValueError`` subclass of that cache names the file and the
  fix (delete it, or use ``"recompute"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from filelock import FileLock

__all__ = [
    "entry_lock",
    "stable_hash",
    "atomic_write",
    "atomic_write_bytes",
    "sha256_bytes",
    "ON_CORRUPT",
    "CorruptCacheWarning",
    "check_on_corrupt",
    "set_aside",
]

#: The values of every cache's ``on_corrupt`` option (see the module docstring).
ON_CORRUPT = ("recompute", "raise")


class CorruptCacheWarning(UserWarning):
    """A cache entry failed its check on read: it was set aside and is being recomputed (the message names it)."""


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


@contextlib.contextmanager
def entry_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive inter-process lock on the cache entry ``path`` (a hidden ``.<name>.lock`` file beside it).

    Two processes that need the same expensive entry (two chapters run side
    by side by ``helpers.book execute --jobs 2``, two Dask workers) would
    otherwise both compute it; under the lock the second one waits and then
    reads what the first one wrote. The lock is advisory (``filelock``:
    ``flock`` on POSIX, ``msvcrt`` on Windows) and is released when the block
    ends or the process dies, so a killed run leaves no stale lock. Never
    nest two locks on the same path in one process (``flock`` would block on
    itself).

    References
    ----------
    .. [1] py-filelock, https://py-filelock.readthedocs.io
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        yield


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_on_corrupt(value: Any, *, error: type[ValueError] = ValueError) -> str:
    """``value`` if it is one of :data:`ON_CORRUPT`, else ``error`` listing the valid ones."""
    if value not in ON_CORRUPT:
        raise error(f"on_corrupt must be one of {', '.join(map(repr, ON_CORRUPT))}, got {value!r}")
    return value


def set_aside(path: str | os.PathLike) -> Path:
    """Rename ``path`` to ``<name>.corrupt`` (or ``.corrupt.1``, ...) without overwriting anything; the new path."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt.{n}")
    os.replace(path, target)
    return target
