"""On-disk cache of saliency maps, keyed by everything that determines them.

A map is determined by the model (``model_key``: architecture, replicate,
weights), its randomization ``state`` (``"trained"``, a cascade step ...), the
method, the method's resolved settings (defaults plus overrides), the code that
computes it (the method's ``version``, this package's :data:`CODE_VERSION`,
and the installed Captum and PAIR ``saliency`` versions), the explained class
and the image (its id and a SHA-256 of its pixels). All of these enter the
key. The key also holds a SHA-256 of the model's parameters and buffers, so a
``model_key``/``state`` label reused for other weights (a retrained model, a
randomization with another seed) can never be served the old maps; hashing
costs about 0.1 s per call for the zoo's models (28-95 MB). The cache stores
the method's **raw** attribution (``(C, H, W)`` ``float32``, signed) and
post-processes on every read (a percentile and a division, well under a
millisecond), so both :meth:`MapCache.get_or_compute` (``[0, 1]`` maps) and
:meth:`MapCache.get_or_compute_raw` (signed 2-D maps) are served from the same
entries.

Layout: one compressed ``.npz`` file per image::

    <root>/<method>/<key hash>/key.json                                  what the hash stands for
    <root>/<method>/<key hash>/<id slug>-<id hash>-<pixel hash>-t<target>.npz

One file per image (rather than one per batch) because the studies ask for
overlapping, growing subsets of images: a missing image is computed and
written on its own, two processes filling the same key never overwrite each
other's work with a partial chunk, and no index has to be kept consistent. The
pixel hash in the name means that a re-generated dataset reusing ids can never
be served stale maps; the id hash keeps ids that share a file-name slug
(``"a/b"``, ``"a_b"``) apart. Every file also stores its full key, checked on
read.

Writes go through :func:`helpers._cache.atomic_write`. Every file stores the
SHA-256 of its raw map's bytes beside it, checked on read (a flipped bit in
the compressed stream does not always break the zip CRC's reader path, and a
changed value must never be served). A file that cannot be read, fails that
check, has the wrong shape or dtype, non-finite values, or a key that does not
match follows the book's one corrupt-entry policy (:mod:`helpers._cache`):
it is moved to ``<root>/quarantine/`` with a
:class:`~helpers._cache.CorruptCacheWarning` naming it and recomputed
(``on_corrupt="recompute"``, the default: maps are deterministic, so the
recomputed map is the one the file should have held), or raises
:class:`CorruptCacheEntryError` naming it (``on_corrupt="raise"``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from helpers._cache import CorruptCacheWarning, atomic_write, check_on_corrupt, entry_lock, sha256_bytes, stable_hash
from helpers._profile import record as record_profile
from helpers.saliency._core import _compute_raw, _target_spec
from helpers.saliency import _engine as E
from helpers.saliency._errors import CorruptCacheEntryError, MapCacheError
from helpers.saliency.postprocess import normalize, warn_constant
from helpers.saliency.registry import get

__all__ = ["MapCache", "CacheStats", "CODE_VERSION", "weights_digest"]

#: Version of the code shared by every method (engine, noise derivation,
#: target resolution); bump it when a change alters any map. Per-method changes
#: bump that method's ``version`` (see :func:`helpers.saliency.register`).
CODE_VERSION = "1"

_FORMAT = 3  # 3: each file stores the SHA-256 of its raw map
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class CacheStats:
    """Counters of one :class:`MapCache` object: ``hits``, ``misses`` (computed images), ``computations`` (method calls)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.computations = 0

    def __repr__(self) -> str:
        return f"CacheStats(hits={self.hits}, misses={self.misses}, computations={self.computations})"


def _plain(obj: Any) -> Any:
    """JSON fallback for numpy values and tuples-like settings."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return list(obj)


def _slug(text: str, limit: int = 60) -> str:
    slug = _SAFE.sub("_", text).strip("._") or "image"
    return slug[:limit]


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    """Versions of the libraries whose algorithms the built-in methods call."""
    out = {}
    for dist in ("captum", "saliency"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - both are pinned requirements
            out[dist] = "absent"
    return out


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (names, dtypes, shapes and values), hex.

    Part of every map-cache key, so that maps are tied to the exact weights
    (batch-norm statistics included) and not only to the ``model_key`` label.
    """
    if not isinstance(model, nn.Module):
        raise MapCacheError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    h = hashlib.sha256()
    for name, tensor in model.state_dict(keep_vars=False).items():
        t = tensor.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class MapCache:
    """Saliency maps on disk under ``root``, computed only where missing.

    Parameters
    ----------
    root : path
        Folder of the cache (created on first write), e.g. ``<cache_dir>/maps``.
    on_corrupt : {"recompute", "raise"}, optional
        What to do with an unreadable or mismatching entry: quarantine it,
        warn and recompute (default), or raise (see the module docstring and
        :mod:`helpers._cache`).

    Attributes
    ----------
    stats : CacheStats
        Hits, misses and method calls of this object.

    Examples
    --------
    >>> cache = MapCache(".cache/maps")  # doctest: +SKIP
    >>> maps = cache.get_or_compute(model, images, ids, "SG", model_key="resnet18-r0-1a2b", n_samples=5)  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike, *, on_corrupt: str = "recompute") -> None:
        check_on_corrupt(on_corrupt, error=MapCacheError)
        self.root = Path(root)
        self.on_corrupt = on_corrupt
        self.stats = CacheStats()

    # ------------------------------------------------------------------ keys
    def key(
        self, method: str, *, model_key: str, state: str = "trained", weights_sha256: str | None = None, **settings: Any
    ) -> dict[str, Any]:
        """The key (a plain dict) of the entries of ``method`` with ``settings`` for a model and state.

        ``weights_sha256`` is :func:`weights_digest` of the model (``None`` only to
        inspect keys without a model; :meth:`get_or_compute` always sets it).
        """
        spec = get(method)
        if not isinstance(model_key, str) or not model_key:
            raise MapCacheError(f"model_key must be a non-empty string naming the model (weights), got {model_key!r}")
        if not isinstance(state, str) or not state:
            raise MapCacheError(f"state must be a non-empty string such as 'trained', got {state!r}")
        resolved = spec.resolve(settings)
        return {
            "format": _FORMAT,
            "model_key": model_key,
            "state": state,
            "weights_sha256": weights_sha256,
            "method": spec.name,
            "version": spec.version,
            "code_version": CODE_VERSION,
            "libraries": dict(_library_versions()),
            "settings": resolved,
        }

    def folder(
        self, method: str, *, model_key: str, state: str = "trained", weights_sha256: str | None = None, **settings: Any
    ) -> Path:
        """Folder holding the entries of that key."""
        key = self.key(method, model_key=model_key, state=state, weights_sha256=weights_sha256, **settings)
        return self.root / _slug(key["method"]) / stable_hash(key)

    # ------------------------------------------------------------------ public
    def get_or_compute(
        self,
        model: nn.Module,
        images: Any,
        image_ids: Sequence[str],
        method: str,
        *,
        model_key: str,
        state: str = "trained",
        target: Any = None,
        batch_size: int = 16,
        internal_batch_size: int | None = None,
        progress: bool | None = None,
        **settings: Any,
    ) -> np.ndarray:
        """Post-processed maps ``(N, H, W)`` float32 in ``[0, 1]``, computing only the images not cached.

        Parameters
        ----------
        model : nn.Module
            The model ``model_key`` / ``state`` stand for (used only for missing images).
        images : array or tensor ``(N, H, W)`` or ``(N, C, H, W)`` in ``[0, 1]``
        image_ids : sequence of str
            One id per image (readable file names; the pixels are hashed too).
        method : str
        model_key : str
            Names the model (e.g. architecture, replicate and training key).
            The key also holds :func:`weights_digest` of ``model``, so a label
            reused for other weights recomputes instead of serving stale maps.
        state : str, optional
            Randomization state (``"trained"``, ``"cascade:layer4"`` ...).
        target : optional
            As in :func:`helpers.saliency.explain` (part of the key).
        batch_size, internal_batch_size, progress
            Execution options of :func:`helpers.saliency.explain` (not part of the key).
        **settings
            Method settings (resolved against the defaults before hashing).

        Warns
        -----
        ConstantMapWarning
        """
        raw, spec = self._get_or_compute(
            model, images, image_ids, method, model_key=model_key, state=state, target=target,
            batch_size=batch_size, internal_batch_size=internal_batch_size, progress=progress, settings=settings,
        )
        maps, constant = normalize(raw, kind=spec.postprocess, label=method)
        warn_constant(constant, label=method, stacklevel=2)
        return maps

    def get_or_compute_raw(
        self,
        model: nn.Module,
        images: Any,
        image_ids: Sequence[str],
        method: str,
        *,
        model_key: str,
        state: str = "trained",
        target: Any = None,
        batch_size: int = 16,
        internal_batch_size: int | None = None,
        progress: bool | None = None,
        **settings: Any,
    ) -> np.ndarray:
        """Raw signed 2-D maps ``(N, H, W)`` float32 (as :func:`helpers.saliency.attribute`), from the same entries."""
        raw, _ = self._get_or_compute(
            model, images, image_ids, method, model_key=model_key, state=state, target=target,
            batch_size=batch_size, internal_batch_size=internal_batch_size, progress=progress, settings=settings,
        )
        return raw.sum(axis=1).astype(np.float32)

    # ------------------------------------------------------------------ internals
    def _get_or_compute(
        self, model, images, image_ids, method, *, model_key, state, target, batch_size, internal_batch_size,
        progress, settings,
    ):
        spec = get(method)
        key = self.key(method, model_key=model_key, state=state, weights_sha256=weights_digest(model), **settings)
        folder = self.root / _slug(spec.name) / stable_hash(key)
        x = E.as_image_tensor(images)
        n = len(x)
        ids = list(image_ids) if not isinstance(image_ids, str) else None
        if ids is None or len(ids) != n or not all(isinstance(i, str) and i for i in ids):
            raise MapCacheError(f"image_ids must be a sequence of {n} non-empty strings (one per image), got {image_ids!r}")
        tspec = _target_spec(target)
        if isinstance(tspec, list) and len(tspec) != n:
            raise MapCacheError(f"target has {len(tspec)} entries for {n} images")
        targets = tspec if isinstance(tspec, list) else [tspec] * n
        digests = [hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in x.numpy()]
        paths = [
            folder / f"{_slug(i)}-{hashlib.sha256(i.encode()).hexdigest()[:8]}-{d[:16]}"
            f"-t{'p' if t == 'predicted' else int(t)}.npz"
            for i, d, t in zip(ids, digests, targets)
        ]
        entry_keys = [
            json.dumps({**key, "image_id": i, "pixels_sha256": d, "target": t}, sort_keys=True, default=_plain)
            for i, d, t in zip(ids, digests, targets)
        ]
        expected_shape = tuple(x.shape[1:])
        raws: list[np.ndarray | None] = [None] * n
        for k, path in enumerate(paths):
            if path.exists():
                raws[k] = self._load(path, entry_keys[k], expected_shape[-2:])
        missing = [k for k in range(n) if raws[k] is None]
        if missing:
            # Another process (a chapter run side by side, a Dask worker) may be computing the same
            # entries: under the key's lock, read what it wrote and compute only what is still missing.
            with entry_lock(folder / "key.json"):
                for k in missing:
                    if paths[k].exists():
                        raws[k] = self._load(paths[k], entry_keys[k], expected_shape[-2:])
                missing = [k for k in range(n) if raws[k] is None]
                if missing:
                    self._write_key(folder, key)
                    sub_target = "predicted" if tspec == "predicted" else [targets[k] for k in missing]
                    tic = time.perf_counter()
                    computed, _ = _compute_raw(
                        model, x[missing], method, target=sub_target, batch_size=batch_size,
                        internal_batch_size=internal_batch_size, progress=progress, settings=settings,
                    )
                    record_profile("maps", spec.name, time.perf_counter() - tic, state=state, n=len(missing))
                    self.stats.computations += 1
                    self.stats.misses += len(missing)
                    for k, raw in zip(missing, computed):
                        self._store(paths[k], raw, entry_keys[k])
                        raws[k] = raw
        self.stats.hits += n - len(missing)
        channels = {r.shape[0] for r in raws}  # type: ignore[union-attr]
        if len(channels) != 1:
            raise MapCacheError(f"cached raw maps of {method!r} under {folder} disagree on the channel count {channels}")
        return np.stack(raws), spec  # type: ignore[arg-type]

    @staticmethod
    def _write_key(folder: Path, key: dict[str, Any]) -> None:
        path = folder / "key.json"
        if not path.exists():
            text = json.dumps(key, indent=2, sort_keys=True, default=_plain)
            atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))

    @staticmethod
    def _store(path: Path, raw: np.ndarray, entry_key: str) -> None:
        raw = np.ascontiguousarray(raw, dtype=np.float32)
        digest = sha256_bytes(raw.tobytes())

        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, raw=raw, key=np.array(entry_key), sha256=np.array(digest))

        atomic_write(path, writer)

    def _load(self, path: Path, entry_key: str, hw: tuple[int, int]) -> np.ndarray | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                raw = data["raw"]
                stored_key = str(data["key"])
                stored_digest = str(data["sha256"]) if "sha256" in data.files else None
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways (zip, zlib, CRC, npy header tokenizer)
            return self._corrupt(path, f"unreadable ({type(exc).__name__}: {exc})")
        if stored_key != entry_key:
            return self._corrupt(path, "its stored key does not match the file name's key")
        if stored_digest is None:
            return self._corrupt(path, "it holds no SHA-256 of its map")
        if sha256_bytes(np.ascontiguousarray(raw).tobytes()) != stored_digest:
            return self._corrupt(path, "its map does not match the SHA-256 stored with it")
        if raw.dtype != np.float32 or raw.ndim != 3 or raw.shape[-2:] != tuple(hw):
            return self._corrupt(path, f"expected a float32 (C, {hw[0]}, {hw[1]}) array, got {raw.dtype} {raw.shape}")
        if not np.isfinite(raw).all():
            return self._corrupt(path, "it contains NaN or inf")
        return raw

    def _corrupt(self, path: Path, reason: str) -> None:
        if self.on_corrupt == "raise":
            raise CorruptCacheEntryError(path, reason)
        quarantine = self.root / "quarantine"
        quarantine.mkdir(parents=True, exist_ok=True)
        target = quarantine / f"{time.time_ns()}-{os.getpid()}-{path.parent.name}-{path.name}"
        try:
            shutil.move(str(path), target)
        except FileNotFoundError:  # another process quarantined it first
            pass
        warnings.warn(f"corrupt saliency-map cache entry {path} ({reason}) moved to {target}; recomputing",
                      CorruptCacheWarning, stacklevel=4)
        return None
