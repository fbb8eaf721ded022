"""The synthetic dataset read back through the real loaders, and :func:`load`.

:func:`load` is what every chapter calls: it turns the run's settings into an
:class:`~helpers.data.imageset.ImageSet`. For the synthetic dataset it writes
the DICOM files and tables once under the cache folder (with
:func:`helpers.data.writer.synth`) and reads them back with *both* real
loaders, so the embedded default exercises the same code path as the RSNA and
SIIM challenges.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation

from helpers._cache import CorruptCacheWarning, atomic_write, entry_lock, set_aside, stable_hash
from helpers.data._tables import check_image_size, check_limit, read_table, stratified_sample
from helpers.data.errors import DataError
from helpers.data.folder import IMAGE_SUFFIXES, load_folder
from helpers.data.imageset import ImageSet
from helpers.data.rsna import load_rsna
from helpers.data.siim import load_siim
from helpers.data.synthetic import GENERATOR_VERSION, MAX_SIZE, MIN_SIZE
from helpers.data.writer import SYNTH_FILES, read_synth_params, synth

__all__ = ["load", "load_eval", "load_synthetic", "synthetic_dir", "real_cache_key", "SYNTHETIC_FORMAT", "REAL_CACHE_FORMAT"]

#: Version of the on-disk layout written by ``synth`` (part of the cache key).
SYNTHETIC_FORMAT = "rsna+siim-dicom12/1"

#: Version of the real-data array cache (part of its key): bump it when a loader's output changes.
REAL_CACHE_FORMAT = "real-arrays/1"

#: Per real loader: (the tables that determine it, the folder below ``data_dir`` holding its images, their suffixes).
_REAL_SOURCES = {
    "rsna": (("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv"), "stage_2_train_images", (".dcm",)),
    "siim": (("train-rle.csv",), ".", (".dcm",)),
    "folder": (("boxes.csv",), ".", IMAGE_SUFFIXES),
}


def _disagree(data_dir: Path, image_id: str, what: str) -> DataError:
    return DataError(
        f"synthetic dataset {str(data_dir)!r}: the RSNA and SIIM files disagree for image {image_id!r}: {what}; "
        "the folder was modified after helpers.data.synth wrote it (delete it to regenerate)"
    )


def load_synthetic(
    data_dir: str | os.PathLike,
    *,
    image_size: int,
    limit: int | None = None,
    progress: bool | None = None,
) -> ImageSet:
    """Read a folder written by :func:`helpers.data.synth` through both real loaders.

    The labels and boxes come from the RSNA table (:func:`load_rsna`), the
    exact pixel masks from the SIIM run-length table (:func:`load_siim`), and
    the two readings are checked against each other and against
    ``synth_truth.csv``.

    Parameters
    ----------
    data_dir : str or path-like
        A folder written by :func:`helpers.data.synth`.
    image_size : int
        Working size; the files' own size need not match (images are resized
        with anti-aliasing, masks with the area rule, boxes scaled).
    limit : int, optional
        Keep only the first ``limit`` images.
    progress : bool or None, optional
        tqdm progress bars (``None``: only on a terminal).

    Returns
    -------
    ImageSet
        ``source="synthetic"``; ``labels`` are the recorded labels (after
        label noise, as in the RSNA table), ``masks`` the union of the
        opacities really drawn (from the SIIM table; with label noise a true
        positive recorded as 0 keeps its mask), ``boxes`` the RSNA boxes.

    Raises
    ------
    DataError
        When the folder is not a ``synth`` folder, a file is missing or
        malformed, or the RSNA and SIIM readings disagree: different images
        or ids, labels that contradict ``synth_truth.csv``, a different
        number of boxes and regions, or a mask outside its boxes.
    """
    data_dir = Path(data_dir)
    size = check_image_size(image_size)
    limit = check_limit(limit)
    read_synth_params(data_dir)  # a clear error for a folder that synth did not write
    rsna = load_rsna(data_dir, image_size=size, limit=limit, progress=progress)
    siim = load_siim(data_dir, image_size=size, limit=limit, progress=progress)
    truth_path = data_dir / SYNTH_FILES["truth"]
    truth = read_table(truth_path, ["patientId", "label", "true_label", "marker", "n_opacities"], id_column="patientId")
    truth = truth.set_index("patientId")

    if rsna.ids != siim.ids:
        first = next((a, b) for a, b in zip(rsna.ids + [None], siim.ids + [None]) if a != b)
        raise DataError(
            f"synthetic dataset {str(data_dir)!r}: {SYNTH_FILES['labels']} and {SYNTH_FILES['rle']} list different images "
            f"({len(rsna)} and {len(siim)}; first difference {first[0]!r} vs {first[1]!r})"
        )
    missing = [i for i in rsna.ids if i not in truth.index]
    if missing:
        raise DataError(f"{str(truth_path)!r} has no row for image {missing[0]!r} ({len(missing)} missing)")
    recorded = truth.loc[rsna.ids, "label"].to_numpy(np.int64)
    true = truth.loc[rsna.ids, "true_label"].to_numpy(np.int64)
    # Both loaders read the same DICOM file with the same resampling: the pixels must be identical.
    differ = np.flatnonzero(~(rsna.images == siim.images).all(axis=(1, 2)))
    if differ.size:
        raise _disagree(data_dir, rsna.ids[differ[0]], "the two loaders produced different pixels")
    box_region = binary_dilation(rsna.masks, structure=np.ones((1, 3, 3), bool))  # 1 px tolerance for resampling
    for i, image_id in enumerate(rsna.ids):
        if rsna.labels[i] != recorded[i]:
            raise _disagree(data_dir, image_id, f"RSNA Target {rsna.labels[i]} but synth_truth label {recorded[i]}")
        if siim.labels[i] != true[i]:
            raise _disagree(data_dir, image_id, f"{'a region' if siim.labels[i] else 'no region'} in the RLE table but synth_truth true_label {true[i]}")
        if recorded[i] == 1 and true[i] == 1:
            if len(rsna.boxes[i]) != len(siim.boxes[i]):
                raise _disagree(data_dir, image_id, f"{len(rsna.boxes[i])} RSNA boxes but {len(siim.boxes[i])} RLE regions")
            if (siim.masks[i] & ~box_region[i]).any():
                raise _disagree(data_dir, image_id, "the RLE mask reaches outside the union of the RSNA boxes")
    return ImageSet(
        images=rsna.images,
        labels=rsna.labels,
        masks=siim.masks,
        boxes=rsna.boxes,
        ids=list(rsna.ids),
        patient_ids=list(rsna.patient_ids),
        source="synthetic",
    )


def synthetic_dir(
    cache_dir: str | os.PathLike,
    *,
    n: int,
    image_size: int,
    seed: int,
    positive_fraction: float,
    progress: bool | None = None,
) -> Path:
    """The folder of the synthetic dataset of these parameters, written once.

    The folder is ``<cache_dir>/data/synthetic-<key>/`` with ``key`` the
    :func:`~helpers._cache.stable_hash` of the parameters, the generator
    version and the file format. It is synthesized at ``image_size`` clipped
    to the generator's range ``[64, 512]`` and reused when present (``synth``
    renames a complete temporary folder into place, so a present folder is
    complete; a concurrent run that finished first is reused too).

    Raises
    ------
    DataError
        For bad parameters, or an existing folder whose ``synth.json`` does
        not match its key (a folder copied or edited by hand).
    """
    synth_size = int(min(max(check_image_size(image_size), MIN_SIZE), MAX_SIZE))
    params = dict(n=int(n), size=synth_size, seed=int(seed), positive_fraction=float(positive_fraction))
    key = stable_hash(dict(kind="synthetic-dataset", generator_version=GENERATOR_VERSION, format=SYNTHETIC_FORMAT, **params))
    folder = Path(cache_dir) / "data" / f"synthetic-{key}"

    def matches(found: dict[str, Any]) -> bool:
        return found.get("generator_version") == GENERATOR_VERSION and all(found.get(k) == v for k, v in params.items()) and (
            found.get("confounder_strength", 0.0) == 0.0 and found.get("label_noise", 0.0) == 0.0
        )

    if not folder.is_dir():
        with entry_lock(folder):  # chapters run side by side: one writes it, the others wait and read it
            if not folder.is_dir():
                try:
                    synth(folder, progress=progress, **params)
                except DataError:
                    if not folder.is_dir():  # not a lost race with another process: a real error
                        raise
    found = read_synth_params(folder)
    if not matches(found):
        raise DataError(
            f"cached synthetic dataset {str(folder)!r} was written with {found!r}, not with {params!r} "
            f"(generator version {GENERATOR_VERSION}); delete the folder to regenerate it"
        )
    return folder


def _save_imageset(path: Path, data: ImageSet) -> None:
    boxes = np.concatenate([b.reshape(-1, 4) for b in data.boxes] or [np.zeros((0, 4))]).astype(np.float64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a path
            np.savez(
                handle,
                images=data.images,
                labels=data.labels,
                masks=data.masks,
                boxes=boxes,
                box_counts=np.array([len(b) for b in data.boxes], np.int64),
                ids=np.array(data.ids, dtype=str),
                patient_ids=np.array(data.patient_ids, dtype=str),
                source=np.array(data.source),
                fingerprint=np.array(data.fingerprint()),
            )

    atomic_write(path, write)


def _read_imageset(path: Path) -> ImageSet:
    with np.load(path, allow_pickle=False) as z:
        counts = z["box_counts"]
        boxes = np.split(z["boxes"], np.cumsum(counts)[:-1]) if counts.size else []
        data = ImageSet(
            images=z["images"],
            labels=z["labels"],
            masks=z["masks"],
            boxes=[np.ascontiguousarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes],
            ids=[str(v) for v in z["ids"]],
            patient_ids=[str(v) for v in z["patient_ids"]],
            source=str(z["source"]),
        )
        expected = str(z["fingerprint"])
    if data.fingerprint() != expected:
        raise DataError(f"{str(path)!r}: fingerprint {data.fingerprint()} differs from the stored {expected}")
    return data


def _load_synthetic_cached(folder: Path, *, image_size: int, progress: bool | None) -> ImageSet:
    """:func:`load_synthetic`, its result kept as ``imageset-<size>.npz`` beside the files.

    The first call reads the DICOM files and tables through both loaders
    (seconds for thousands of images); later calls, e.g. from every chapter of
    the book, read the array file written then (a fraction of a second). An
    unreadable array file is replaced after a :class:`RuntimeWarning`.
    """
    cache_file = folder / f"imageset-{int(image_size)}.npz"
    if cache_file.is_file():
        try:
            return _read_imageset(cache_file)
        except Exception as exc:  # a damaged cache entry: rebuilt from the files, loudly
            warnings.warn(f"cached image set {str(cache_file)!r} cannot be read ({type(exc).__name__}: {exc}); rebuilding it from {str(folder)!r}",
                          RuntimeWarning, stacklevel=3)
    with entry_lock(cache_file):
        if cache_file.is_file():  # written by a chapter that held the lock first
            try:
                return _read_imageset(cache_file)
            except Exception:  # noqa: BLE001 - the damaged file was reported above; rebuilt below
                pass
        data = load_synthetic(folder, image_size=image_size, progress=progress)
        _save_imageset(cache_file, data)
    return data


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _image_files(root: Path, suffixes: tuple[str, ...]) -> list[list]:
    """``[relative path, size, mtime_ns]`` of every image file below ``root`` (sorted; the pixels are not read)."""
    listing = []
    for folder, dirs, files in os.walk(root):  # as helpers.data._tables.find_files: symlinked folders not followed
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(suffixes):
                path = Path(folder) / name
                st = path.stat()
                listing.append([path.relative_to(root).as_posix(), int(st.st_size), int(st.st_mtime_ns)])
    return listing


def real_cache_key(kind: str, data_dir: str | os.PathLike, *, image_size: int, limit: int | None, seed: int) -> dict[str, Any]:
    """What determines the arrays :func:`load` caches for a real dataset (hashed with :func:`~helpers._cache.stable_hash`).

    The loader ``kind``, ``image_size``, the subsample (``limit`` and, when
    it is set, ``seed``), :data:`REAL_CACHE_FORMAT`, the SHA-256 of each of
    the loader's tables (``None`` for an absent optional one) and, for every
    image file the loader may read (by suffix, below its image folder), the
    relative path, size and ``mtime_ns``. The pixels are not read: a file
    rewritten in place changes its mtime, so the key changes and the arrays
    are decoded again rather than served stale. (A file changed with its old
    size and mtime restored by hand is not detected.)
    """
    tables, images_dir, suffixes = _REAL_SOURCES[kind]
    data_dir = Path(data_dir)
    return {
        "kind": kind,
        "format": REAL_CACHE_FORMAT,
        "image_size": int(image_size),
        "limit": limit,
        "seed": int(seed) if limit is not None else None,
        "tables": {name: _file_sha256(data_dir / name) for name in tables},
        "images": _image_files(data_dir / images_dir, tuple(suffixes)),
    }


def _real_entry(cache_dir, kind: str, size: int, key: str) -> tuple[Path, Path, Path]:
    """The three files of a real-data cache entry: the record (``.npz``) and the memory-mapped ``images``/``masks`` (``.npy``)."""
    base = Path(cache_dir) / "data" / "arrays" / f"{kind}-{size}-{key}"
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".images.npy"), base.with_name(base.name + ".masks.npy")


def _decode_real(loader, files: tuple[Path, Path, Path], key: str, data_dir: Path, **options: Any) -> None:
    """Decode with ``loader`` straight into the entry's ``.npy`` files, then write its record.

    The images and masks are decoded into memory maps on temporary files
    beside the entry (:func:`numpy.lib.format.open_memmap`), so that the full
    RSNA set at 320 px (about 11 GB of float32 pixels and 2.7 GB of masks) is
    never held in memory; the files are renamed into place when complete,
    the record (with the key and the fingerprint that checks them) last. A
    crash leaves no entry or a stale record, which fails its check and is
    rebuilt; the temporary files are removed.
    """
    record, images_file, masks_file = files
    images_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = {"images": images_file.with_name(f".{images_file.name}.{os.getpid()}.tmp"),
                 "masks": masks_file.with_name(f".{masks_file.name}.{os.getpid()}.tmp")}

    def allocate(name: str, shape: tuple, dtype: Any) -> np.ndarray:
        return np.lib.format.open_memmap(temporary[name], mode="w+", dtype=np.dtype(dtype).newbyteorder("<"),
                                         shape=shape)

    try:
        built = loader(data_dir, allocate=allocate, **options)
        for array in (built.images, built.masks):
            if isinstance(array, np.memmap):
                array.flush()
        os.replace(temporary["images"], images_file)
        os.replace(temporary["masks"], masks_file)
        _save_record(record, built, key)  # the fingerprint is read through the memory maps (now of the entry's files)
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)


def _save_record(record: Path, data: ImageSet, key: str) -> None:
    """The entry's record: key, labels, boxes, ids, source and the fingerprint of the arrays."""
    boxes = np.concatenate([b.reshape(-1, 4) for b in data.boxes] or [np.zeros((0, 4))]).astype(np.float64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.array(key), labels=data.labels, boxes=boxes,
                     box_counts=np.array([len(b) for b in data.boxes], np.int64),
                     ids=np.array(data.ids, dtype=str), patient_ids=np.array(data.patient_ids, dtype=str),
                     source=np.array(data.source), fingerprint=np.array(data.fingerprint()))

    atomic_write(record, write)


def _read_real(files: tuple[Path, Path, Path], key: str) -> ImageSet:
    record, images_file, masks_file = files
    with np.load(record, allow_pickle=False) as z:
        if str(z["key"]) != key:
            raise DataError(f"{str(record)!r} holds key {str(z['key'])!r}, not {key!r}")
        counts = z["box_counts"]
        boxes = np.split(z["boxes"], np.cumsum(counts)[:-1]) if counts.size else []
        meta = dict(labels=z["labels"], boxes=[np.ascontiguousarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes],
                    ids=[str(v) for v in z["ids"]], patient_ids=[str(v) for v in z["patient_ids"]], source=str(z["source"]))
        expected = str(z["fingerprint"])
    data = ImageSet(images=np.load(images_file, mmap_mode="r", allow_pickle=False),
                    masks=np.load(masks_file, mmap_mode="r", allow_pickle=False), **meta)
    if data.fingerprint() != expected:
        raise DataError(f"{str(record)!r}: fingerprint {data.fingerprint()} of the cached arrays differs from the stored {expected}")
    return data


def _try_read_real(files: tuple[Path, Path, Path], key: str, data_dir: Path) -> ImageSet | None:
    """The cached entry, or ``None`` when absent; a damaged one is set aside with a :class:`CorruptCacheWarning`."""
    if not files[0].is_file():
        return None
    try:
        return _read_real(files, key)
    except Exception as exc:  # a damaged entry: set aside for inspection, then decoded again, loudly
        moved = [str(set_aside(f)) for f in files if f.exists()]
        warnings.warn(f"cached image set {str(files[0])!r} cannot be read ({type(exc).__name__}: {exc}); set aside as "
                      f"{', '.join(map(repr, moved))} and rebuilt from {str(data_dir)!r}", CorruptCacheWarning, stacklevel=4)
        return None


def _load_real_cached(kind: str, data_dir: Path, *, image_size: int, limit: int | None, seed: int,
                      cache_dir, progress: bool | None) -> ImageSet:
    """A real loader's result, decoded once and kept under ``<cache_dir>/data/arrays/`` (see :func:`load`)."""
    key = stable_hash(real_cache_key(kind, data_dir, image_size=image_size, limit=limit, seed=seed))
    files = _real_entry(cache_dir, kind, image_size, key)
    data = _try_read_real(files, key, data_dir)
    if data is not None:
        return data
    with entry_lock(files[0]):  # chapters run side by side: one decodes, the others wait and read
        data = _try_read_real(files, key, data_dir)
        if data is None:
            _decode_real(_REAL_LOADERS[kind], files, key, data_dir, image_size=image_size, sample=limit,
                         sample_seed=seed, progress=progress)
            data = _read_real(files, key)  # memory-mapped: the decoded arrays are never held in memory
    return data


#: The loader of each real dataset kind (the synthetic set has its own path in :func:`load`).
_REAL_LOADERS = {"rsna": load_rsna, "siim": load_siim, "folder": load_folder}


def load(settings, *, progress: bool | None = None) -> ImageSet:
    """The dataset of a run, at its working size.

    Parameters
    ----------
    settings : helpers.config.Settings
        Uses ``dataset``, ``data_dir``, ``image_size``, ``limit``,
        ``seed``, ``cache_dir`` and, for the synthetic dataset,
        ``n_synthetic`` and ``positive_fraction``.
    progress : bool or None, optional
        tqdm progress bars (``None``: only on a terminal).

    Returns
    -------
    ImageSet

    Raises
    ------
    DataError
        An unknown dataset, a missing ``data_dir``, or any loader error.

    Notes
    -----
    ``"synthetic"``: :func:`synthetic_dir` then :func:`load_synthetic`; the
    result is also kept as ``imageset-<image_size>.npz`` in the dataset's
    folder (with its fingerprint, checked on reading), so later calls do not
    decode the DICOM files again.
    ``"rsna"``, ``"siim"``, ``"folder"``: :func:`~helpers.data.rsna.load_rsna`,
    :func:`~helpers.data.siim.load_siim`, :func:`~helpers.data.folder.load_folder`
    on ``data_dir`` with their default file names, decoded once: the result
    is kept under ``<cache_dir>/data/arrays/<kind>-<image_size>-<key>`` with
    ``key`` the :func:`~helpers._cache.stable_hash` of
    :func:`real_cache_key` (the tables' contents and every image file's
    path, size and mtime, so a changed file is decoded again, never served
    stale). An entry is three files written atomically under an
    inter-process lock: ``.images.npy`` and ``.masks.npy``, returned
    **memory-mapped read-only** (``numpy.load(mmap_mode="r")``; the pages are
    read on use and belong to the OS page cache, so the ~10 GB of the
    ``paper`` preset on full RSNA are not held in memory twice once the
    splits copy their images), and a ``.npz`` record with the labels, boxes,
    ids, the key and the fingerprint, checked on every read. An unreadable or
    mismatching entry is set aside (``.corrupt``) with a
    :class:`~helpers._cache.CorruptCacheWarning` naming it, and rebuilt. The
    first load still decodes into memory once before writing the entry.

    ``limit`` (an int): a seeded (``seed``), label-stratified subsample of
    that many images, drawn before any split
    (:func:`~helpers.data._tables.stratified_sample`); for the real datasets
    only the chosen images are decoded; for ``"synthetic"`` it is drawn from
    the ``n_synthetic`` images (the cached set is generated whole).
    """
    dataset = getattr(settings, "dataset", None)
    size = check_image_size(getattr(settings, "image_size", None))
    if dataset == "synthetic":
        folder = synthetic_dir(
            settings.cache_dir,
            n=settings.n_synthetic,
            image_size=size,
            seed=settings.seed,
            positive_fraction=settings.positive_fraction,
            progress=progress,
        )
        data = _load_synthetic_cached(folder, image_size=size, progress=progress)
        limit = check_limit(getattr(settings, "limit", None))
        if limit is None or limit >= len(data):
            return data
        kept = set(stratified_sample(data.ids, data.labels, limit, seed=settings.seed))
        return data.subset([i for i, image_id in enumerate(data.ids) if image_id in kept])
    loaders = _REAL_LOADERS
    if dataset not in loaders:
        raise DataError(f"unknown dataset {dataset!r}; expected one of synthetic, {', '.join(loaders)}")
    data_dir = getattr(settings, "data_dir", None)
    if not data_dir or not Path(data_dir).is_dir():
        raise DataError(f"dataset {dataset!r} needs data_dir to be the dataset's folder, got {data_dir!r}")
    return _load_real_cached(dataset, Path(data_dir), image_size=size, limit=check_limit(getattr(settings, "limit", None)),
                             seed=int(getattr(settings, "seed", 0)), cache_dir=settings.cache_dir, progress=progress)


def load_eval(settings, *, progress: bool | None = None) -> ImageSet | None:
    """The evaluation dataset of a run when it differs from the training one (``eval_dataset``), else ``None``.

    Parameters
    ----------
    settings : helpers.config.Settings
        Uses ``eval_dataset`` (``"rsna"``, ``"siim"`` or ``"folder"``),
        ``eval_data_dir``, ``image_size`` and ``cache_dir``.
    progress : bool or None, optional

    Returns
    -------
    ImageSet or None
        Every image of that folder at the working size (it may hold
        positives only; ``limit`` does not apply), decoded once and cached
        (memory-mapped) as in :func:`load`; ``None`` when ``eval_dataset``
        is not set.

    Raises
    ------
    DataError
        An unknown ``eval_dataset``, a missing folder, or any loader error.
    """
    dataset = getattr(settings, "eval_dataset", None)
    if dataset is None:
        return None
    loaders = _REAL_LOADERS
    if dataset not in loaders:
        raise DataError(f"unknown eval_dataset {dataset!r}; expected one of {', '.join(loaders)}")
    data_dir = getattr(settings, "eval_data_dir", None)
    if not data_dir or not Path(data_dir).is_dir():
        raise DataError(f"eval_dataset {dataset!r} needs eval_data_dir to be the dataset's folder, got {data_dir!r}")
    # Decoded once too, with the cache of load() (every image: limit does not apply to the evaluation set).
    return _load_real_cached(dataset, Path(data_dir), image_size=check_image_size(settings.image_size), limit=None, seed=0,
                             cache_dir=settings.cache_dir, progress=progress)
